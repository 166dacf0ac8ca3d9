#include "float_pass.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <utility>

#include "float_executor.h"
#include "float_nhwc.h"

namespace trit {

std::vector<float> FloatStatistics::layer_output(const Graph& g, size_t node) const {
  const int32_t o_n = g.nodes[node].weights.shape[0];
  std::vector<float> out(static_cast<size_t>(plan[node].rows) * o_n);
  outputs->read(output_offset[node], out.data(), out.size() * sizeof(float));
  return out;
}

namespace {

// What the pass keeps of one chunk's node, whose output y ([count][H][W][C]) holds the values
// before the layer's activation: the layer's sample of them, then (after its ReLU, applied here
// in place) the output's exponent sample.
void observe(const Graph& g, size_t ni, int64_t first, int64_t count, float* y, FloatStatistics& fs) {
  const Node& n = g.nodes[ni];
  const int32_t t = n.outputs[0];
  const int64_t elements = g.tensors[t].elements(), size = elements * count;
  if (has_weights(n)) {
    const int32_t o_n = n.weights.shape[0];
    const SamplePlan& p = fs.plan[ni];
    const auto [r0, r1] = p.rows_in(first, first + count);
    std::vector<float> rows(static_cast<size_t>((r1 - r0) * o_n));
    gather_pixels(p, y, o_n, first, count, rows.data() - r0 * o_n, true);
    fs.outputs->write(fs.output_offset[ni] + r0 * o_n * static_cast<int64_t>(sizeof(float)), rows.data(),
                      rows.size() * sizeof(float));
    if (n.activation == Activation::Relu)
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, size, 65536), [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t j = r.begin(); j < r.end(); ++j) y[j] = std::max(y[j], 0.0f);
      });
  }
  fs.exponent[t].add_channels_last({y, static_cast<size_t>(size)}, shape3(g.tensors[t]), first * elements, fs.images * elements);
}

// start + the sum of the squares of v: in blocks of 65536 values over oneTBB's threads, the
// blocks' sums added in order (the same bits for any thread count).
double sum_of_squares(const float* v, int64_t n, double start) {
  constexpr int64_t kBlock = 65536;
  std::vector<double> block((n + kBlock - 1) / kBlock, 0.0);
  tbb::parallel_for(int64_t{0}, static_cast<int64_t>(block.size()), [&](int64_t b) {
    double s = 0;
    for (int64_t j = b * kBlock; j < std::min(n, (b + 1) * kBlock); ++j) s += double(v[j]) * v[j];
    block[b] = s;
  });
  for (double s : block) start += s;
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
  FloatBuffers buffers;                          // the tensors, [N][H][W][C], kept between chunks

  for (int64_t first = 0; first < fs.images; first += chunk) {
    const int64_t count = std::min<int64_t>(chunk, fs.images - first);
    CalibrationBatch batch = load_calibration(source, static_cast<size_t>(first), static_cast<size_t>(first + count), g);
    for (int64_t i = 0; i < count; ++i) fs.fitted->write(first + i, 1, batch.fitted[i].pixels.data());
    fs.exponent[g.inputs[0]].add(batch.normalized, first * input.elements(), fs.images * input.elements());
    std::vector<float*> values(g.tensors.size(), nullptr);
    values[g.inputs[0]] = buffers.take(batch.normalized.size());
    k8::nchw_to_nhwc(batch.normalized.data(), static_cast<int32_t>(count), shape3(input), values[g.inputs[0]]);
    for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
      const Node& n = g.nodes[ni];
      std::vector<const float*> ins;
      for (int32_t t : n.inputs) ins.push_back(values[t]);
      const int32_t out = n.outputs[0];
      const int64_t size = g.tensors[out].elements() * count;
      float* y = values[out] = buffers.take(static_cast<size_t>(size));
      // A layer runs without its activation, so that its pre-activation output can be sampled.
      nodes.run(ni, static_cast<int32_t>(count), ins, Activation::None, y, buffers.padded);
      observe(g, ni, first, count, y, fs);
      if (powered[out]) fs.power[out] = sum_of_squares(y, size, fs.power[out]);
      for (int32_t t : n.inputs)
        if (last_use[t] == ni) buffers.give(std::exchange(values[t], nullptr));
    }
    for (float* v : values)
      if (v) buffers.give(v);
    if (progress) progress(first + count, fs.images);
  }
  return fs;
}

}  // namespace trit
