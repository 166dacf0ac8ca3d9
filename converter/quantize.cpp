#include "quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "bias_correction.h"
#include "blas.h"
#include "calibration.h"
#include "emit.h"
#include "exponents.h"
#include "float_pass.h"
#include "int_network.h"
#include "layer_sample.h"
#include "mixed_precision.h"
#include "reconstruct/float_trunk.h"
#include "reconstruct/reconstruct.h"
#include "residual_blocks.h"
#include "trit/error.h"

namespace trit {
namespace {

// Sampled rows per weight column from which a layer's weights are refitted (weight_quant.h).
// With fewer (stage 5 and the classifier of ResNet-50 see 50 x 49 and 50 pixels of 50 images),
// least squares would fit the calibration images' noise; such a layer is refitted by one gain.
constexpr int64_t kRefitRows = 2;

// The one gain g that brings the layer's output on the quantized network's inputs closest to the
// float network's output at the sampled pixels, each output channel's mean over them set apart
// (bias correction matches the means afterwards): argmin sum_o ||c(X_f w_o) - g c(X_q w_o)||^2,
// c() centring a column. The quantized layers before a layer shrink the scale of what it sees
// (each fits its output by least squares, which loses the part of the float output its codes
// cannot reach); a layer refitted weight by weight (refit_to_inputs) makes that up, and one with
// too few rows for that gets this single gain, which its rows determine well. 1 where the output
// does not vary or the fit is not a positive gain.
double layer_gain(std::span<const float> w, int32_t o_n, const LayerSample& rows, std::span<const float> b,
                  const std::vector<float>& yfr) {
  std::vector<float> yq(yfr.size());
  blas::rows_times_weights(rows.cols.data(), rows.rows, rows.k, w.data(), o_n, yq.data());
  std::vector<double> mean_q(o_n, 0.0), mean_f(o_n, 0.0);
  for (size_t j = 0; j < yq.size(); ++j) {
    mean_q[j % o_n] += yq[j];
    mean_f[j % o_n] += double(yfr[j]) - b[j % o_n];
  }
  for (int32_t o = 0; o < o_n; ++o) {
    mean_q[o] /= double(rows.rows);
    mean_f[o] /= double(rows.rows);
  }
  double cross = 0, power = 0;
  for (size_t j = 0; j < yq.size(); ++j) {
    const double q = yq[j] - mean_q[j % o_n];
    cross += q * (double(yfr[j]) - b[j % o_n] - mean_f[j % o_n]);
    power += q * q;
  }
  const double g = power > 0 ? cross / power : 1.0;
  return std::isfinite(g) && g > 0 ? g : 1.0;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Step 2: every exponent from the float network's values (MaxPool, Flatten and Relu keep their
// input's; int32 outputs are set when their layer is emitted).
void set_exponents(Graph& g, const FloatStatistics& fs, bool lse) {
  auto set = [&](int32_t t) {
    Tensor& tt = g.tensors[t];
    if (tt.type != ElementType::Int32) tt.exponent = choose_exponent(fs.exponent[t], range_of(tt.type), lse);
  };
  set(g.inputs[0]);
  for (const Node& n : g.nodes) {
    if (n.op == OpCode::MaxPool || n.op == OpCode::Flatten || n.op == OpCode::Relu)
      g.tensors[n.outputs[0]].exponent = g.tensors[n.inputs[0]].exponent;
    else set(n.outputs[0]);
  }
}

// Step 3b: the layer's weights as the quantizer chooses them, and the weights it was given
// (refitted or float: what its own quantization error is measured from).
struct WeightFit {
  quant::QuantizedLayer quantized;
  std::vector<float> given;
  double gain = 1;  // layer_gain, where the layer had too few rows to refit each weight
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
    fit.given = quant::refit_to_inputs(w, o_n, static_cast<int32_t>(rows.k), h, {xt.begin(), xt.end()},
                                       quant::refit_damping(spec, rows.k, rows.rows));
    fit.quantized = quant::quantize_gptq(fit.given, fnode.weights.shape, spec, std::move(h), quant::kGptqDamp);
  } else {
    fit.gain = layer_gain(w, o_n, rows, b, yfr);
    for (float& v : fit.given) v = static_cast<float>(v * fit.gain);
    fit.quantized = quant::quantize_gptq(fit.given, fnode.weights.shape, spec, std::move(h), quant::kGptqDamp);
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

// Steps 3b-3d for layer ni of g, from its sample (rows: the integer network's inputs; yfr: the
// float network's pre-activation outputs at the same pixels). Returns its report; the agreement
// of its output tensor and its trunk share are the caller's.
LayerReport quantize_layer(Graph& g, const Graph& float_graph, size_t ni, const FloatStatistics& fs, const LayerSample& rows,
                           const std::vector<float>& yfr, const QuantizeOptions& opt, std::vector<float>* given) {
  Node& n = g.nodes[ni];
  const Node& fnode = float_graph.nodes[ni];
  const auto [o_n, i_n, kh, kw] = fnode.weights.shape;
  const auto b = fnode.bias.as<float>();
  const LayerCost cost = layer_cost(float_graph, ni, opt);
  const quant::LayerSpec spec = layer_spec(g, fnode, cost, opt);
  WeightFit fit = fit_weights(fnode, spec, opt, rows, yfr);
  const quant::QuantizedLayer& ql = fit.quantized;
  // 3c. The quantized layer's pre-activation output (float bias) on the integer network's input
  // at the sampled pixels, and the bias correction that brings it to the float one.
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
  if (given) *given = fit.given;
  // What quantizing this layer's weights added on its own: X_q (given - dequantized).
  double added = 0;
  if (spec.encoding != WeightEncoding::Float32) {
    for (size_t j = 0; j < fit.given.size(); ++j) fit.given[j] -= ql.dequantized[j];
    blas::rows_times_weights(rows.cols.data(), rows.rows, rows.k, fit.given.data(), o_n, yq.data());
    for (float v : yq) added += double(v) * v;
  }
  // 3d. Emitted as the file holds it.
  LayerEmission e{spec.encoding, spec.cluster, spec.shape, &ql, std::vector<double>(o_n), &fs.exponent[n.outputs[0]]};
  for (int32_t o = 0; o < o_n; ++o) e.bias[o] = b[o] + shift[o];
  emit_layer(g, n, e);

  LayerReport lr;
  lr.name = n.name;
  lr.encoding = spec.encoding;
  lr.cluster = n.weights.cluster_size;
  lr.shape = n.weights.cluster_shape;
  lr.zero_share = ql.zero_share;
  lr.weight_error = ql.weight_error;
  lr.output_error = den > 0 ? std::sqrt(num / den) : 0.0;
  lr.added_error = den > 0 ? std::sqrt(added / den) : 0.0;
  lr.macs = cost.macs;
  lr.multiplications = cost.multiplications;
  lr.bytes = int64_t(n.weights.codes.size + n.weights.scales.size + n.weights.scale_exponents.size + n.bias.size);
  if (spec.encoding == WeightEncoding::TernaryClustered || spec.encoding == WeightEncoding::Int4Clustered) {
    if (opt.cluster > i_n) lr.note = fmt::format("N={} exceeds the {} input channels: one cluster of {}", opt.cluster, i_n, i_n);
    else if (i_n % spec.cluster) lr.note = fmt::format("last cluster of {} channels, not {}", i_n % spec.cluster, spec.cluster);
  }
  if (fit.gain != 1)
    lr.note += fmt::format("{}refitted by one gain, x{:.3f} ({} sampled rows for {} inputs)", lr.note.empty() ? "" : "; ",
                           fit.gain, rows.rows, rows.k);
  return lr;
}

// 3a. Layer ni's sample of the integer network's inputs: every chunk of images through the
// segment's nodes before it.
LayerSample sample_layer(IntNetwork& net, const Graph& g, const Segment& seg, size_t ni, const FloatStatistics& fs,
                         int32_t chunk) {
  const Node& n = g.nodes[ni];
  const Tensor& in = g.tensors[n.inputs[0]];
  LayerSample rows;
  rows.k = int64_t{n.weights.shape[1]} * n.weights.shape[2] * n.weights.shape[3];
  rows.rows = fs.plan[ni].rows;
  rows.cols.assign(static_cast<size_t>(rows.rows * rows.k), 0.0f);
  for (int64_t first = 0; first < fs.images; first += chunk) {
    IntChunk c = net.load(seg.input, first, std::min<int64_t>(chunk, fs.images - first));
    for (size_t nj = seg.begin; nj < ni; ++nj) net.run(nj, c, true);
    gather_rows(fs.plan[ni], c.values[n.inputs[0]], in.exponent, shape3(in), n.window, shape3(g.tensors[n.outputs[0]]),
                c.first, c.count, rows);
  }
  return rows;
}

// The segment's last pass: every chunk through all its nodes; its output kept for the next
// segment, and each layer's integer output at its sampled pixels compared with the float one.
void finish_segment(IntNetwork& net, const Graph& g, const Segment& seg, bool last, const FloatStatistics& fs,
                    int32_t chunk, std::vector<LayerReport>& reports, const std::vector<size_t>& layers) {
  std::vector<std::vector<int32_t>> outputs(layers.size());
  for (size_t l = 0; l < layers.size(); ++l)
    outputs[l].resize(static_cast<size_t>(fs.plan[layers[l]].rows * g.nodes[layers[l]].weights.shape[0]));
  for (int64_t first = 0; first < fs.images; first += chunk) {
    IntChunk c = net.load(seg.input, first, std::min<int64_t>(chunk, fs.images - first));
    for (size_t nj = seg.begin; nj < seg.end; ++nj) net.run(nj, c, true);
    if (!last) net.keep(seg.output, c);
    for (size_t l = 0; l < layers.size(); ++l) {
      const Node& n = g.nodes[layers[l]];
      gather_pixels(fs.plan[layers[l]], c.values[n.outputs[0]].data(), n.weights.shape[0], c.first, c.count,
                    outputs[l].data(), false);
    }
  }
  net.end_segment();
  for (size_t l = 0; l < layers.size(); ++l) {
    const Node& n = g.nodes[layers[l]];
    std::vector<float> f = fs.layer_output(g, layers[l]);
    if (n.activation == Activation::Relu)
      for (float& v : f) v = std::max(v, 0.0f);
    const Agreement a = compare(f, outputs[l], g.tensors[n.outputs[0]]);
    reports[l].sqnr_db = a.sqnr_db;
    reports[l].cosine = a.cosine;
    reports[l].saturated = a.saturated;
  }
}

// A block's data for reconstruction: the quantized network's input from the integer network's
// trunk, the float network's input and output from the float trunk of the sample.
class SegmentData : public recon::BlockData {
 public:
  SegmentData(const IntNetwork& net, const recon::FloatTrunk& trunk, const Segment& seg, int32_t views)
      : net_(net), trunk_(trunk), seg_(seg), views_(views) {}
  int64_t images() const override { return trunk_.size(); }
  int64_t photo(int64_t j) const override { return trunk_.image(j) / views_; }  // views are consecutive (calibration.h)
  void quantized_input(int64_t j, int32_t* out) const override {
    const IntChunk c = net_.load(seg_.input, trunk_.image(j), 1);
    std::copy(c.values[seg_.input].begin(), c.values[seg_.input].end(), out);
  }
  void float_input(int64_t j, float* out) const override { trunk_.read_input(j, out); }
  void float_output(int64_t j, float* out) const override { trunk_.read_output(j, out); }

 private:
  const IntNetwork& net_;
  const recon::FloatTrunk& trunk_;
  const Segment& seg_;
  int32_t views_;
};

// One conversion with the encodings the options give, on the float pass's statistics (pass: 0
// alone, else pass of --min-replaced's passes, the last of which is the final one).
Graph quantize_pass(const Graph& float_graph, const QuantizeOptions& opt, const FloatStatistics& fs, QuantizeReport& rep,
                    const Progress& progress, int pass, int passes) {
  Graph g = float_graph;  // becomes the integer graph, layer by layer
  assign_types(g);
  set_exponents(g, fs, opt.lse_exponents);
  const size_t layer_count = std::count_if(g.nodes.begin(), g.nodes.end(), has_weights);
  const std::vector<BranchJoin> joins = branch_joins(g);
  const std::vector<Segment> segments = residual_segments(g);
  IntNetwork net(g, fs, opt.chunk);
  // With reconstruction (not in --min-replaced's measuring passes): the float network over the
  // bounded sample, a segment at a time beside the integer one.
  const bool reconstruct = opt.reconstruct && pass == passes;
  std::unique_ptr<recon::FloatTrunk> trunk;
  if (reconstruct) trunk = std::make_unique<recon::FloatTrunk>(float_graph, fs, opt.reconstruction.images, opt.chunk);
  for (size_t s = 0; s < segments.size(); ++s) {
    const Segment& seg = segments[s];
    std::vector<size_t> layers;
    std::vector<LayerReport> reports;
    std::vector<double> seconds;
    std::map<size_t, std::vector<float>> given;
    for (size_t ni = seg.begin; ni < seg.end; ++ni) {
      if (!has_weights(g.nodes[ni])) continue;
      const auto t0 = Clock::now();
      const LayerSample rows = sample_layer(net, g, seg, ni, fs, opt.chunk);
      reports.push_back(quantize_layer(g, float_graph, ni, fs, rows, fs.layer_output(g, ni), opt,
                                       reconstruct ? &given[ni] : nullptr));
      net.prepare(ni);
      layers.push_back(ni);
      seconds.push_back(seconds_since(t0));
    }
    if (reconstruct) {
      trunk->run(seg);
      const std::string why = recon::cannot_reconstruct(g, seg);
      if (why.empty()) {
        const SegmentData data(net, *trunk, seg, opt.calibration.augment);
        rep.blocks.push_back(recon::reconstruct_block(g, seg, given, data, opt.reconstruction, s, opt.block_progress));
        for (size_t ni : layers) net.prepare(ni);  // the block's layers as reconstruction left them
        net.forget();
      }
      trunk->next();
    }
    const auto t1 = Clock::now();
    finish_segment(net, g, seg, s + 1 == segments.size(), fs, opt.chunk, reports, layers);
    const double final_pass = seconds_since(t1) / std::max<size_t>(1, layers.size());
    for (size_t l = 0; l < layers.size(); ++l) {
      const BranchJoin& j = joins[layers[l]];
      if (j.add_node >= 0) {
        const double total = fs.power[g.nodes[j.add_node].outputs[0]];
        reports[l].trunk_share = total > 0 ? fs.power[j.entering] / total : 1.0;
      }
      rep.layers.push_back(reports[l]);
      if (progress) progress(pass, passes, rep.layers.size() - 1, layer_count, reports[l], seconds[l] + final_pass);
    }
  }
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
  if (opt.chunk < 1) fail("quantize: chunks of {} images", opt.chunk);
  if (opt.reconstruct) {
    const recon::ReconstructOptions& r = opt.reconstruction;
    if (r.iterations < 1) fail("--reconstruct-iters {} is not a number of iterations (1 or more)", r.iterations);
    if (r.batch < 1) fail("--reconstruct-batch {} is not a batch size (1 or more)", r.batch);
    if (r.images < 1) fail("--reconstruct-images {} is not a number of images (1 or more)", r.images);
  }
  if (opt.min_replaced > 0) {
    if (opt.encoding != WeightEncoding::TernaryClustered)
      fail("--min-replaced needs ternary weights: it keeps the ternary layers that lose most at int4");
    if (!(opt.min_replaced < 1)) fail("--min-replaced {} is not a share below 1", opt.min_replaced);
    // The share all-ternary replaces is known from the shapes: an unreachable one fails now,
    // before any image is read (choose_int4_layers says the same).
    QuantizeReport shapes;
    for (size_t ni = 0; ni < float_graph.nodes.size(); ++ni)
      if (has_weights(float_graph.nodes[ni])) {
        const LayerCost c = layer_cost(float_graph, ni, opt);
        LayerReport l;
        l.macs = c.macs;
        l.multiplications = c.multiplications;
        shapes.layers.push_back(l);
      }
    choose_promotions({shapes}, opt.min_replaced, opt.layers);
  }

  // 1-2. The calibration images through the float network, once for every pass.
  const std::unique_ptr<CalibrationSource> source = make_calibration(opt.calibration);
  if (opt.reconstruct) {  // the sample less its held-back images must fill a batch
    const recon::ReconstructOptions& r = opt.reconstruction;
    const int64_t sample = std::min<int64_t>(r.images, static_cast<int64_t>(source->size()));
    const int64_t train = sample - sample / r.held_out_every;
    if (train < r.batch)
      fail("cannot reconstruct on {} calibration images: {} of them train ({} held back), fewer than a batch of {}",
           source->size(), train, sample - train, r.batch);
  }
  const FloatStatistics fs = float_pass(float_graph, *source, opt.chunk, opt.float_progress);
  QuantizeReport rep;
  for (size_t i = 0; i < source->size(); ++i) rep.calibration_images.push_back(source->name(i));

  // 3. The layers (4. with --min-replaced: measuring passes, all ternary at the cluster size
  // asked and at the smaller of N=2 and N=1, then the final one).
  if (opt.min_replaced <= 0) {
    Graph g = quantize_pass(float_graph, opt, fs, rep, progress, 0, 0);
    if (report) *report = std::move(rep);
    return g;
  }
  std::vector<int32_t> clusters{opt.cluster};
  for (const int32_t n : {2, 1})
    if (opt.cluster <= 0 || n < opt.cluster) clusters.push_back(n);
  const int passes = static_cast<int>(clusters.size()) + 1;
  std::vector<QuantizeReport> measured(clusters.size(), rep);
  for (size_t p = 0; p < clusters.size(); ++p) {
    QuantizeOptions all_ternary = opt;
    all_ternary.cluster = clusters[p];
    quantize_pass(float_graph, all_ternary, fs, measured[p], progress, static_cast<int>(p) + 1, passes);
  }
  const std::vector<Promotion> chosen = choose_promotions(measured, opt.min_replaced, opt.layers);
  QuantizeOptions final_options = opt;
  for (const Promotion& c : chosen) {
    if (c.encoding == WeightEncoding::Int4Clustered) final_options.layers[c.name] = c.encoding;
    else final_options.layer_clusters[c.name] = c.cluster;
  }
  Graph g = quantize_pass(float_graph, final_options, fs, rep, progress, passes, passes);
  for (LayerReport& l : rep.layers)
    for (const Promotion& c : chosen)
      if (c.name == l.name)
        l.note += fmt::format("{}{} by --min-replaced (ternary N={} added error {:.3f})", l.note.empty() ? "" : "; ",
                              c.encoding == WeightEncoding::Int4Clustered ? "int4" : fmt::format("N={}", c.cluster),
                              opt.cluster, c.added_error);
  if (report) *report = std::move(rep);
  return g;
}

}  // namespace trit
