#include "quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>

#include "bias_correction.h"
#include "blas.h"
#include "calibration.h"
#include "emit.h"
#include "engine.h"
#include "exponents.h"
#include "float_executor.h"
#include "float_ref.h"
#include "int_node.h"
#include "layer_sample.h"
#include "mixed_precision.h"
#include "quantized_io.h"
#include "residual_blocks.h"
#include "trit/error.h"

namespace trit {
namespace {

// Sampled rows per weight column from which a layer's weights are refitted (weight_quant.h).
// With fewer (stage 5 and the classifier of ResNet-50 see 50 x 49 and 50 pixels of 50 images),
// least squares would fit the calibration images' noise.
constexpr int64_t kRefitRows = 2;

// The float and the integer network side by side over the calibration batch: every tensor's
// values in each, as far as the pass has come. A tensor is freed after the last node reading it.
struct Networks {
  const Graph& float_graph;
  Graph& g;  // the integer graph being made
  int32_t batch = 0;
  std::vector<std::vector<float>> fv;    // float network
  std::vector<std::vector<int32_t>> iv;  // integer network
  std::vector<size_t> last_use;

  Networks(const Graph& float_graph_, Graph& g_, CalibrationBatch calib, int32_t batch_)
      : float_graph(float_graph_), g(g_), batch(batch_), fv(g_.tensors.size()), iv(g_.tensors.size()),
        last_use(g_.tensors.size(), g_.nodes.size()) {
    for (size_t i = 0; i < g.nodes.size(); ++i)
      for (int32_t t : g.nodes[i].inputs) last_use[t] = i;
    fv[g.inputs[0]] = std::move(calib.normalized);
    iv[g.inputs[0]] = quantize_images(g, calib.fitted);
  }

  template <typename T>
  static std::vector<const T*> pointers(const std::vector<std::vector<T>>& values, const Node& n) {
    std::vector<const T*> p;
    for (int32_t t : n.inputs) p.push_back(values[t].data());
    return p;
  }

  void release_inputs(size_t ni) {
    for (int32_t t : g.nodes[ni].inputs)
      if (last_use[t] == ni) {
        std::vector<float>().swap(fv[t]);
        std::vector<int32_t>().swap(iv[t]);
      }
  }
};

void set_exponent(Tensor& t, std::span<const float> values, bool lse) {
  if (t.type == ElementType::Int32) return;
  ExponentSample sample;
  sample.add(values);
  t.exponent = choose_exponent(sample, range_of(t.type), lse);
}

double power(const std::vector<float>& v) {
  double p = 0;
  for (float x : v) p += double(x) * x;
  return p;
}

// One layer of the integer network over the calibration batch: on the fast kernels, which equal
// the integer reference bit for bit (tests/test_kernels.cpp) in a fraction of its time, through
// a graph of that one layer; a layer kept in float32 runs on the reference.
void run_int_layer(const Graph& g, const Node& n, int32_t batch, const std::vector<int32_t>& in,
                   std::vector<int32_t>& out) {
  auto one = std::make_shared<Graph>();
  one->tensors = {g.tensors[n.inputs[0]], g.tensors[n.outputs[0]]};
  one->nodes.push_back(n);
  one->nodes[0].inputs = {0};
  one->nodes[0].outputs = {1};
  one->inputs = {0};
  one->outputs = {1};
  if (!Engine::unsupported_reason(*one).empty()) {
    const PreparedLayer layer = prepare_layer(g, n);
    run_int_node(g, n, &layer, batch, {in.data()}, out.data());
    return;
  }
  const Engine engine(one);
  Workspace workspace(engine, batch);
  engine.run_into(workspace, in, out);
}

// A node that is not a layer, in both networks; its output's exponent from the float values.
void run_other_node(Networks& net, size_t ni, bool lse) {
  const Node& n = net.g.nodes[ni];
  const int32_t out = n.outputs[0];
  const int64_t out_n = net.g.tensors[out].elements() * net.batch;
  net.fv[out].resize(out_n);
  net.iv[out].resize(out_n);
  run_float_node(net.float_graph, net.float_graph.nodes[ni], nullptr, net.batch, Networks::pointers(net.fv, n),
                 net.fv[out].data());
  if (n.op == OpCode::MaxPool || n.op == OpCode::Flatten || n.op == OpCode::Relu)
    net.g.tensors[out].exponent = net.g.tensors[n.inputs[0]].exponent;
  else set_exponent(net.g.tensors[out], net.fv[out], lse);
  run_int_node(net.g, n, nullptr, net.batch, Networks::pointers(net.iv, n), net.iv[out].data());
}

// Step 3b: the layer's weights as the quantizer chooses them, and the weights it was given
// (refitted or float: what its own quantization error is measured from).
struct WeightFit {
  quant::QuantizedLayer quantized;
  std::vector<float> given;
};
WeightFit fit_weights(const Node& fnode, const quant::LayerSpec& spec, const QuantizeOptions& opt,
                      const LayerSample& rows, const std::vector<float>& yfr) {
  const int32_t o_n = fnode.weights.shape[0];
  const auto w = fnode.weights.codes.as<float>();
  const auto b = fnode.bias.as<float>();
  WeightFit fit;
  fit.given.assign(w.begin(), w.end());
  if (spec.encoding == WeightEncoding::Float32) {  // kept in float (--layer NAME=float)
    fit.quantized.dequantized.assign(w.begin(), w.end());
    return fit;
  }
  if (!opt.gptq) {
    fit.quantized = quant::quantize_rtn(w, fnode.weights.shape, spec);
    return fit;
  }
  std::vector<double> h = blas::gram(rows.cols.data(), rows.rows, rows.k);
  if (rows.rows >= kRefitRows * rows.k) {
    std::vector<float> target(yfr.size());  // X_f w at the sampled pixels
    for (size_t j = 0; j < yfr.size(); ++j) target[j] = yfr[j] - b[j % o_n];
    std::vector<float> xt(static_cast<size_t>(rows.k) * o_n);
    blas::inputs_times_targets(rows.cols.data(), rows.rows, rows.k, target.data(), o_n, xt.data());
    fit.given = quant::refit_to_inputs(w, o_n, static_cast<int32_t>(rows.k), h, {xt.begin(), xt.end()});
    fit.quantized = quant::quantize_gptq(fit.given, fnode.weights.shape, spec, std::move(h));
  } else {
    fit.quantized = quant::quantize_gptq(w, fnode.weights.shape, spec, std::move(h));
  }
  return fit;
}

// The layer's spec: its encoding and clusters (layer_cost), and per output channel the largest
// weight exponent that keeps |bias| * 2^(f_in + e_o) below 2^30 (headroom for the bias
// correction) and the requantization shift f_in + e_o - f_out within what prepare_layer takes.
quant::LayerSpec layer_spec(const Graph& g, const Node& fnode, const LayerCost& cost, const QuantizeOptions& opt) {
  quant::LayerSpec spec;
  spec.encoding = cost.encoding;
  spec.cluster = cost.cluster;
  spec.shape = opt.shape;
  spec.threshold = opt.threshold;
  const auto b = fnode.bias.as<float>();
  const int32_t f_in = g.tensors[fnode.inputs[0]].exponent, f_out = g.tensors[fnode.outputs[0]].exponent;
  for (int32_t o = 0; o < fnode.weights.shape[0]; ++o) {
    const int32_t bias_room = static_cast<int32_t>(std::floor(std::log2(std::ldexp(1.0, 30) / (std::abs(b[o]) + 1.0))));
    spec.exponent_cap.push_back(std::min(bias_room, 48 + f_out) - f_in);
  }
  return spec;
}

// Steps 3a-3d for layer ni. Returns its report (trunk share and note left to the caller).
LayerReport quantize_layer(Networks& net, size_t ni, const QuantizeOptions& opt) {
  Graph& g = net.g;
  Node& n = g.nodes[ni];
  const Node& fnode = net.float_graph.nodes[ni];
  const int32_t out_t = n.outputs[0], batch = net.batch;
  const Shape3 is = shape3(g.tensors[n.inputs[0]]), os = shape3(g.tensors[out_t]);
  const int32_t o_n = fnode.weights.shape[0];
  const auto b = fnode.bias.as<float>();
  // The float layer before its activation (yf); after it, the float network's output, whose
  // values give the output's exponent.
  Node pre = fnode;
  pre.activation = Activation::None;
  std::vector<float> yf(static_cast<size_t>(g.tensors[out_t].elements()) * batch);
  const auto w = fnode.weights.codes.as<float>();
  const auto [o_w, i_w, kh, kw] = fnode.weights.shape;
  const auto packed_f = n.op == OpCode::Conv ? ref::pack_conv_weights(w.data(), o_w, i_w, kh, kw) : std::vector<float>{};
  run_float_node(net.float_graph, pre, packed_f.data(), batch, Networks::pointers(net.fv, n), yf.data());
  net.fv[out_t] = yf;
  if (n.activation == Activation::Relu)
    for (float& v : net.fv[out_t]) v = std::max(v, 0.0f);
  set_exponent(g.tensors[out_t], net.fv[out_t], opt.lse_exponents);

  const LayerCost cost = layer_cost(net.float_graph, ni, opt);
  const quant::LayerSpec spec = layer_spec(g, fnode, cost, opt);
  // 3a. The integer network's input to this layer as real values (exact: m * 2^-f), sampled.
  LayerSample rows;
  {
    const float unit = static_cast<float>(std::ldexp(1.0, -g.tensors[n.inputs[0]].exponent));
    std::vector<float> xq(net.iv[n.inputs[0]].size());
    for (size_t j = 0; j < xq.size(); ++j) xq[j] = static_cast<float>(net.iv[n.inputs[0]][j]) * unit;
    rows = sample_rows(xq, is, n.window, os, batch, opt.max_rows);
  }
  const std::vector<float> yfr = at_sampled_pixels(rows, yf, o_n);
  // 3b. The weights.
  WeightFit fit = fit_weights(fnode, spec, opt, rows, yfr);
  const quant::QuantizedLayer& ql = fit.quantized;
  // 3c. The quantized layer's pre-activation output (float bias) on the integer network's
  // input at the same pixels, and the bias correction that brings it to the float one.
  std::vector<float> yq(yfr.size());
  blas::rows_times_weights(rows.cols.data(), rows.rows, rows.k, ql.dequantized.data(), o_n, yq.data());
  for (size_t j = 0; j < yq.size(); ++j) yq[j] += b[j % o_n];
  const std::vector<double> shift = opt.bias_correction
                                        ? bias_shifts(yfr, yq, o_n, rows.rows, n.activation == Activation::Relu)
                                        : std::vector<double>(o_n, 0.0);
  double num = 0, den = 0;
  for (int64_t j = 0; j < rows.rows * o_n; ++j) {
    const double d = yq[j] + shift[j % o_n] - yfr[j];
    num += d * d;
    den += double(yfr[j]) * yfr[j];
  }
  // What quantizing this layer's weights added on its own: X_q (given - dequantized).
  double added = 0;
  if (spec.encoding != WeightEncoding::Float32) {
    for (size_t j = 0; j < fit.given.size(); ++j) fit.given[j] -= ql.dequantized[j];
    blas::rows_times_weights(rows.cols.data(), rows.rows, rows.k, fit.given.data(), o_n, yq.data());
    for (float v : yq) added += double(v) * v;
  }
  // 3d. Emitted, run in integer for the next layers, reported.
  LayerEmission e{spec.encoding, spec.cluster, spec.shape, &ql, std::vector<double>(o_n), &net.fv[out_t]};
  for (int32_t o = 0; o < o_n; ++o) e.bias[o] = b[o] + shift[o];
  emit_layer(g, n, e);
  net.iv[out_t].resize(net.fv[out_t].size());
  run_int_layer(g, n, batch, net.iv[n.inputs[0]], net.iv[out_t]);

  LayerReport lr;
  lr.name = n.name;
  lr.encoding = spec.encoding;
  lr.cluster = n.weights.cluster_size;
  lr.shape = n.weights.cluster_shape;
  lr.zero_share = ql.zero_share;
  lr.weight_error = ql.weight_error;
  lr.output_error = den > 0 ? std::sqrt(num / den) : 0.0;
  lr.added_error = den > 0 ? std::sqrt(added / den) : 0.0;
  const Agreement agreement = compare(net.fv[out_t], net.iv[out_t], g.tensors[out_t]);
  lr.sqnr_db = agreement.sqnr_db;
  lr.cosine = agreement.cosine;
  lr.saturated = agreement.saturated;
  lr.macs = cost.macs;
  lr.multiplications = cost.multiplications;
  lr.bytes = int64_t(n.weights.codes.size + n.weights.scales.size + n.weights.scale_exponents.size + n.bias.size);
  const int32_t i_n = fnode.weights.shape[1];
  if (spec.encoding == WeightEncoding::TernaryClustered || spec.encoding == WeightEncoding::Int4Clustered) {
    if (opt.cluster > i_n) lr.note = fmt::format("N={} exceeds the {} input channels: one cluster of {}", opt.cluster, i_n, i_n);
    else if (i_n % spec.cluster) lr.note = fmt::format("last cluster of {} channels, not {}", i_n % spec.cluster, spec.cluster);
  }
  return lr;
}

// One conversion with the encodings the options give (pass: 0 alone, else 1 or 2 of two).
Graph quantize_pass(const Graph& float_graph, const QuantizeOptions& opt, QuantizeReport* report,
                    const Progress& progress, int pass) {
  // 1. Calibration images, fitted and normalized.
  const ImageFiles source(list_images(opt.calib_dir, opt.calib_count));
  const auto batch = static_cast<int32_t>(source.size());
  CalibrationBatch calib = load_calibration(source, 0, source.size(), float_graph);
  // 2. Types now; each exponent from the float network's values as the pass reaches its tensor.
  Graph g = float_graph;  // becomes the integer graph, layer by layer
  assign_types(g);
  set_exponent(g.tensors[g.inputs[0]], calib.normalized, opt.lse_exponents);
  Networks net(float_graph, g, std::move(calib), batch);

  // 3. Layers in order, float and integer networks side by side.
  QuantizeReport rep;
  for (size_t i = 0; i < source.size(); ++i) rep.calibration_images.push_back(source.name(i));
  const size_t layer_count = std::count_if(g.nodes.begin(), g.nodes.end(), has_weights);
  // Where each layer's output joins the trunk (residual_blocks.h): at that Add, its trunk share.
  const std::vector<BranchJoin> joins = branch_joins(g);
  std::vector<std::vector<std::pair<int32_t, size_t>>> joining(g.nodes.size());  // add -> (tensor, report index)
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const auto start = std::chrono::steady_clock::now();
    if (!has_weights(g.nodes[ni])) {
      run_other_node(net, ni, opt.lse_exponents);
      if (!joining[ni].empty()) {
        const double total = power(net.fv[g.nodes[ni].outputs[0]]);
        std::map<int32_t, double> branch;  // each entering tensor's power, once for all its layers
        for (const auto& [t, li] : joining[ni]) {
          auto [it, fresh] = branch.try_emplace(t, 0.0);
          if (fresh) it->second = power(net.fv[t]);
          rep.layers[li].trunk_share = total > 0 ? it->second / total : 1.0;
        }
      }
    } else {
      LayerReport lr = quantize_layer(net, ni, opt);
      if (joins[ni].add_node >= 0) joining[joins[ni].add_node].push_back({joins[ni].entering, rep.layers.size()});
      rep.layers.push_back(lr);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (progress) progress(pass, rep.layers.size() - 1, layer_count, lr, seconds);
    }
    net.release_inputs(ni);
  }
  if (report) *report = std::move(rep);
  return g;
}

}  // namespace

Graph quantize(const Graph& float_graph, const QuantizeOptions& opt, QuantizeReport* report, const Progress& progress) {
  if (opt.encoding == WeightEncoding::Float32) fail("quantize: the target encoding is float32");
  for (const auto& entry : opt.layers) {
    const std::string& name = entry.first;  // (clang 14 cannot capture a structured binding)
    const bool found = std::any_of(float_graph.nodes.begin(), float_graph.nodes.end(),
                                   [&](const Node& n) { return has_weights(n) && n.name == name; });
    if (!found) fail("cannot quantize: the model has no Conv or fully connected layer named '{}'", name);
  }
  for (const Node& n : float_graph.nodes)
    if (has_weights(n) && n.weights.encoding != WeightEncoding::Float32)
      fail("cannot quantize layer '{}': it is already {}", n.name, to_string(n.weights.encoding));

  if (opt.min_replaced <= 0) return quantize_pass(float_graph, opt, report, progress, 0);
  if (opt.encoding != WeightEncoding::TernaryClustered)
    fail("--min-replaced needs ternary weights: it keeps the ternary layers that lose most at int4");
  if (!(opt.min_replaced < 1)) fail("--min-replaced {} is not a share below 1", opt.min_replaced);
  // The share all-ternary replaces is known from the shapes: an unreachable one fails now, not
  // after the first pass (choose_int4_layers says the same).
  QuantizeReport shapes;
  for (size_t ni = 0; ni < float_graph.nodes.size(); ++ni)
    if (has_weights(float_graph.nodes[ni])) {
      const LayerCost c = layer_cost(float_graph, ni, opt);
      LayerReport l;
      l.macs = c.macs;
      l.multiplications = c.multiplications;
      shapes.layers.push_back(l);
    }
  choose_int4_layers(shapes, opt.min_replaced, opt.layers);

  QuantizeReport first;
  quantize_pass(float_graph, opt, &first, progress, 1);
  const std::vector<std::string> chosen = choose_int4_layers(first, opt.min_replaced, opt.layers);
  QuantizeOptions second = opt;
  for (const std::string& name : chosen) second.layers[name] = WeightEncoding::Int4Clustered;
  QuantizeReport rep;
  Graph g = quantize_pass(float_graph, second, &rep, progress, 2);
  for (LayerReport& l : rep.layers)
    if (std::find(chosen.begin(), chosen.end(), l.name) != chosen.end()) {
      const auto it = std::find_if(first.layers.begin(), first.layers.end(), [&](const LayerReport& f) { return f.name == l.name; });
      l.note += fmt::format("{}int4 by --min-replaced (ternary, it added error {:.3f})", l.note.empty() ? "" : "; ",
                            it->added_error);
    }
  if (report) *report = std::move(rep);
  return g;
}

}  // namespace trit
