#include "float_pass.h"

#include <algorithm>

#include "float_executor.h"

namespace trit {

std::vector<float> FloatStatistics::layer_output(const Graph& g, size_t node) const {
  const int32_t o_n = g.nodes[node].weights.shape[0];
  std::vector<float> out(static_cast<size_t>(plan[node].rows) * o_n);
  outputs->read(output_offset[node], out.data(), out.size() * sizeof(float));
  return out;
}

namespace {

// What the pass keeps of one chunk's node: the layer's pre-activation sample and the output's
// statistics.
void observe(const Graph& g, size_t ni, int64_t first, int64_t count, const std::vector<float>& pre,
             const std::vector<float>& out, FloatStatistics& fs) {
  const Node& n = g.nodes[ni];
  const int32_t t = n.outputs[0];
  const int64_t elements = g.tensors[t].elements();
  fs.exponent[t].add(out, first * elements, fs.images * elements);
  if (has_weights(n)) {
    const int32_t o_n = n.weights.shape[0];
    const SamplePlan& p = fs.plan[ni];
    const auto [r0, r1] = p.rows_in(first, first + count);
    std::vector<float> rows(static_cast<size_t>((r1 - r0) * o_n));
    gather_pixels(p, pre.data(), o_n, first, count, rows.data() - r0 * o_n);
    fs.outputs->write(fs.output_offset[ni] + r0 * o_n * static_cast<int64_t>(sizeof(float)), rows.data(),
                      rows.size() * sizeof(float));
  }
}

double sum_of_squares(const std::vector<float>& v, double start) {
  for (float x : v) start += double(x) * x;
  return start;
}

}  // namespace

FloatStatistics float_pass(const Graph& g, const CalibrationSource& source, int32_t chunk,
                           const FloatProgress& progress) {
  FloatStatistics fs;
  fs.images = static_cast<int64_t>(source.size());
  fs.exponent.resize(g.tensors.size());
  fs.plan.resize(g.nodes.size());
  fs.output_offset.assign(g.nodes.size(), -1);
  fs.power.assign(g.tensors.size(), 0.0);
  fs.outputs = std::make_unique<SpillFile>();
  const Tensor& input = g.input();
  fs.fitted = std::make_unique<ImageRecords>(int64_t{input.shape[1]} * input.shape[2] * 3);
  int64_t offset = 0;
  for (size_t ni = 0; ni < g.nodes.size(); ++ni)
    if (has_weights(g.nodes[ni])) {
      const auto& ws = g.nodes[ni].weights.shape;
      fs.plan[ni] = sample_plan(fs.images, shape3(g.tensors[g.nodes[ni].outputs[0]]), sample_rows(int64_t{ws[1]} * ws[2] * ws[3]));
      fs.output_offset[ni] = offset;
      offset += fs.plan[ni].rows * g.nodes[ni].weights.shape[0] * static_cast<int64_t>(sizeof(float));
    }
  std::vector<bool> powered(g.tensors.size(), false);  // the tensors residual Adds read and write
  for (const Node& n : g.nodes)
    if (n.op == OpCode::Add) {
      for (int32_t t : n.inputs) powered[t] = true;
      powered[n.outputs[0]] = true;
    }
  std::vector<size_t> last_use(g.tensors.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int32_t t : g.nodes[i].inputs) last_use[t] = i;
  const FloatNodes nodes(g, 0, g.nodes.size());  // the layers' weights packed once

  for (int64_t first = 0; first < fs.images; first += chunk) {
    const int64_t count = std::min<int64_t>(chunk, fs.images - first);
    CalibrationBatch batch = load_calibration(source, static_cast<size_t>(first), static_cast<size_t>(first + count), g);
    for (int64_t i = 0; i < count; ++i) fs.fitted->write(first + i, 1, batch.fitted[i].pixels.data());
    std::vector<std::vector<float>> values(g.tensors.size());
    values[g.inputs[0]] = std::move(batch.normalized);
    fs.exponent[g.inputs[0]].add(values[g.inputs[0]], first * input.elements(), fs.images * input.elements());
    for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
      const Node& n = g.nodes[ni];
      std::vector<const float*> ins;
      for (int32_t t : n.inputs) ins.push_back(values[t].data());
      const int32_t out = n.outputs[0];
      std::vector<float>& y = values[out];
      y.resize(static_cast<size_t>(g.tensors[out].elements() * count));
      // A layer runs without its activation, so that its pre-activation output can be sampled.
      nodes.run(ni, static_cast<int32_t>(count), ins, Activation::None, y.data());
      std::vector<float> pre_activation;
      if (has_weights(n) && n.activation == Activation::Relu) {
        pre_activation = y;
        for (float& v : y) v = std::max(v, 0.0f);
      }
      observe(g, ni, first, count, pre_activation.empty() ? y : pre_activation, y, fs);
      if (powered[out]) fs.power[out] = sum_of_squares(y, fs.power[out]);
      for (int32_t t : n.inputs)
        if (last_use[t] == ni) std::vector<float>().swap(values[t]);
    }
    if (progress) progress(first + count, fs.images);
  }
  return fs;
}

}  // namespace trit
