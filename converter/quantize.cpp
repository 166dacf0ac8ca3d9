#include "quantize.h"

#include <cblas.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include "../kernels/float_ref.h"
#include "trit/engine.h"
#include "trit/error.h"
#include "trit/json.h"
#include "trit/float_executor.h"
#include "trit/image.h"
#include "trit/int_executor.h"
#include "trit/weight_codes.h"

namespace trit {
namespace {

namespace fs = std::filesystem;

// ---- activation exponents ------------------------------------------------------------------

// A strided sample of a tensor's calibration values (at most ~256 K), and its exact peak.
struct Sample {
  std::vector<float> values;
  float peak = 0;
  void add(std::span<const float> v) {
    const size_t stride = std::max<size_t>(1, v.size() / 262144);
    for (size_t j = 0; j < v.size(); ++j) {
      peak = std::max(peak, std::abs(v[j]));
      if (j % stride == 0) values.push_back(v[j]);
    }
  }
};

// value = m * 2^-f, m = saturate(floor(x * 2^f + 0.5)) as the integer pipeline rounds.
int32_t choose_exponent(const Sample& s, Range r, bool lse) {
  if (!(s.peak > 0)) return 0;
  const int32_t top = static_cast<int32_t>(std::clamp(std::floor(std::log2(r.hi / double(s.peak))), -32.0, 32.0));
  if (!lse) return top;
  int32_t best = top;
  double best_err = INFINITY;
  for (int32_t f = top; f <= std::min(top + 8, 32); ++f) {
    double err = 0;
    for (float x : s.values) {
      const double m = std::clamp(std::floor(std::ldexp(double(x), f) + 0.5), double(r.lo), double(r.hi));
      const double d = x - std::ldexp(m, -f);
      err += d * d;
    }
    if (err < best_err) {
      best_err = err;
      best = f;
    }
  }
  return best;
}

// Sampled rows per weight column from which a layer's weights are refitted (see below).
constexpr int64_t kRefitRows = 2;

bool is_layer(const Node& n) { return n.op == OpCode::Conv || n.op == OpCode::FullyConnected; }

ref::Shape3 shape3(const Tensor& t) {
  return t.shape.size() == 3 ? ref::Shape3{t.shape[0], t.shape[1], t.shape[2]} : ref::Shape3{t.shape[0], 1, 1};
}

// Element types of every tensor (see quantize.h); exponents are chosen after.
void assign_types(Graph& g) {
  const Metadata& m = g.metadata;
  bool non_negative = true;
  for (size_t c = 0; c < m.mean.size(); ++c) non_negative &= m.mean[c] <= 0;  // (0 - mean) / scale >= 0
  g.tensors[g.inputs[0]].type = non_negative ? ElementType::UInt8 : ElementType::Int8;
  std::vector<bool> is_output(g.tensors.size(), false);
  for (int32_t t : g.outputs) is_output[t] = true;
  for (const Node& n : g.nodes) {
    Tensor& out = g.tensors[n.outputs[0]];
    const Tensor& in = g.tensors[n.inputs[0]];
    switch (n.op) {
      case OpCode::Conv:
      case OpCode::FullyConnected:
        out.type = is_output[n.outputs[0]] ? ElementType::Int32
                   : n.activation == Activation::Relu ? ElementType::UInt8 : ElementType::Int8;
        break;
      case OpCode::Add: out.type = n.activation == Activation::Relu ? ElementType::UInt8 : ElementType::Int8; break;
      case OpCode::Relu: out.type = ElementType::UInt8; break;
      default: out.type = in.type; break;
    }
  }
}

// ---- layers --------------------------------------------------------------------------------

// im2col rows of the calibration inputs: a strided sample of at most max_rows output pixels
// (position p = image * OH * OW + y * OW + x, p = r * stride), K = C * KH * KW values each.
struct Rows {
  std::vector<float> cols;  // [rows][k]
  int64_t rows = 0, k = 0, stride = 1;
};

Rows im2col_rows(const std::vector<float>& x, ref::Shape3 is, const Window& w, ref::Shape3 os, int32_t batch,
                 int32_t max_rows) {
  Rows r;
  r.k = int64_t{is.c} * w.kernel_h * w.kernel_w;
  const int64_t positions = int64_t{batch} * os.h * os.w;
  r.stride = std::max<int64_t>(1, (positions + max_rows - 1) / max_rows);
  r.rows = (positions + r.stride - 1) / r.stride;
  r.cols.assign(static_cast<size_t>(r.rows * r.k), 0.0f);
  tbb::parallel_for(int64_t{0}, r.rows, [&](int64_t row) {
    const int64_t p = row * r.stride;
    const int64_t im = p / (int64_t{os.h} * os.w), y = p / os.w % os.h, xo = p % os.w;
    float* dst = r.cols.data() + row * r.k;
    for (int32_t i = 0; i < is.c; ++i)
      for (int32_t ky = 0; ky < w.kernel_h; ++ky)
        for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
          const int64_t iy = y * w.stride_h - w.pad_top + ky, ix = xo * w.stride_w - w.pad_left + kx;
          if (iy < 0 || iy >= is.h || ix < 0 || ix >= is.w) continue;
          dst[(int64_t{i} * w.kernel_h + ky) * w.kernel_w + kx] = x[((im * is.c + i) * is.h + iy) * is.w + ix];
        }
  });
  return r;
}

// H = X^T X in double, from the sampled rows.
std::vector<double> gram(const Rows& r) {
  const auto k = static_cast<int>(r.k);
  std::vector<float> hf(static_cast<size_t>(r.k * r.k), 0.0f);
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, static_cast<int>(r.rows), 1.0f, r.cols.data(), k, 0.0f,
              hf.data(), k);
  std::vector<double> h(hf.size());
  for (int64_t a = 0; a < r.k; ++a)
    for (int64_t b = a; b < r.k; ++b) h[a * r.k + b] = h[b * r.k + a] = hf[a * r.k + b];
  return h;
}

// Per-channel bias shift that makes the quantized layer's pre-activation yq match the float
// layer's yf, both [rows][channels] at the sampled pixels: after a ReLU, the mean of relu(yq + d)
// equals the mean of relu(yf); elsewhere d is the mean of yf - yq. The ReLU case is solved
// exactly: with yq sorted in decreasing order, mean relu(yq + d) = (S_k + k d) / rows while the
// k largest are the positive ones (S_k their sum), so d = (rows * target - S_k) / k for the k
// whose interval holds it. A channel whose float output is never positive gets d = -max yq - 1.
std::vector<double> bias_shifts(const std::vector<float>& yf, const std::vector<float>& yq, int32_t channels,
                                int64_t rows, bool relu) {
  std::vector<double> shift(channels, 0.0);
  tbb::parallel_for(0, channels, [&](int32_t c) {
    const double count = double(rows);
    if (!relu) {
      double d = 0;
      for (int64_t j = 0; j < rows; ++j) d += yf[j * channels + c] - yq[j * channels + c];
      shift[c] = d / count;
      return;
    }
    double target = 0;
    std::vector<double> a(static_cast<size_t>(rows));
    for (int64_t j = 0; j < rows; ++j) {
      target += std::max(yf[j * channels + c], 0.0f);
      a[j] = yq[j * channels + c];
    }
    std::sort(a.begin(), a.end(), std::greater<>());
    if (!(target > 0)) {
      shift[c] = -a[0] - 1;
      return;
    }
    double sum = 0;  // S_k, the sum of the k largest
    for (int64_t k = 1; k <= rows; ++k) {
      sum += a[k - 1];
      const double d = (target - sum) / double(k);  // target here is rows * mean
      const double next = k < rows ? a[k] : -INFINITY;
      if (a[k - 1] + d > 0 && next + d <= 0) {
        shift[c] = d;
        return;
      }
    }
  });
  return shift;
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

// SQNR, cosine and saturated share of an integer tensor q * 2^-exponent against the float f.
struct Agreement {
  double sqnr_db = 0, cosine = 0, saturated = 0;
};
Agreement compare(const std::vector<float>& f, const std::vector<int32_t>& q, const Tensor& t) {
  const double unit = std::ldexp(1.0, -t.exponent);
  const bool int32 = t.type == ElementType::Int32;
  const Range r = int32 ? Range{0, 0} : range_of(t.type);
  const bool is_signed = t.type == ElementType::Int8;
  double ff = 0, qq = 0, fq = 0, noise = 0;
  int64_t saturated = 0;
  for (size_t j = 0; j < f.size(); ++j) {
    const double v = q[j] * unit;
    ff += double(f[j]) * f[j];
    qq += v * v;
    fq += v * f[j];
    noise += (v - f[j]) * (v - f[j]);
    saturated += !int32 && (q[j] == r.hi || (is_signed && q[j] == r.lo));
  }
  Agreement a;
  a.sqnr_db = noise > 0 ? 10 * std::log10(ff / noise) : 999.0;
  a.cosine = ff > 0 && qq > 0 ? fq / std::sqrt(ff * qq) : (ff == qq ? 1.0 : 0.0);
  a.saturated = f.empty() ? 0.0 : double(saturated) / double(f.size());
  return a;
}

}  // namespace

std::vector<std::string> list_images(const std::string& dir, int32_t count) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("cannot calibrate: '{}' is not a folder", dir);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (e.is_regular_file() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp"))
      files.push_back(e.path().string());
  }
  if (ec) fail("cannot calibrate: cannot list '{}': {}", dir, ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) fail("cannot calibrate: '{}' holds no JPEG, PNG or BMP images", dir);
  if (count > 0 && files.size() > static_cast<size_t>(count)) files.resize(count);
  return files;
}

double QuantizeReport::replaced_share() const {
  double macs = 0, mults = 0;
  for (const LayerReport& l : layers) {
    macs += double(l.macs);
    mults += double(l.multiplications);
  }
  return macs > 0 ? 1.0 - mults / macs : 0.0;
}

std::string QuantizeReport::json() const {
  std::string s = "{\"layers\": [";
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerReport& l = layers[i];
    s += fmt::format(
        "{}\n  {{\"name\": {}, \"encoding\": \"{}\", \"cluster\": {}, \"cluster_shape\": \"{}\", "
        "\"zero_share\": {:.6f}, \"weight_error\": {:.6f}, \"output_error\": {:.6f}, \"added_error\": {:.6f}, \"trunk_share\": {:.6f}, "
        "\"sqnr_db\": {:.3f}, "
        "\"cosine\": {:.6f}, \"saturated\": {:.6f}, \"macs\": {}, \"multiplications\": {}, \"bytes\": {}, "
        "\"note\": {}}}",
        i ? "," : "", json_quote(l.name), to_string(l.encoding), l.cluster,
        l.shape == ClusterShape::Kernels ? "kernels" : "channels", l.zero_share, l.weight_error, l.output_error,
        l.added_error, l.trunk_share, l.sqnr_db, l.cosine, l.saturated, l.macs, l.multiplications, l.bytes, json_quote(l.note));
  }
  s += "\n], \"calibration_images\": [";
  for (size_t i = 0; i < calibration_images.size(); ++i)
    s += (i ? ", " : "") + json_quote(fs::path(calibration_images[i]).filename().string());
  s += fmt::format("], \"multiplications_replaced\": {:.6f}}}\n", replaced_share());
  return s;
}

namespace {

// A layer's encoding under the options (--layer, else --keep-8bit for the first and last layer,
// else the target), its cluster size, its multiply-accumulates per image and the multiplications
// left of them (ternary: one per cluster and output; the others: all). Known from the shapes
// alone, before any calibration.
struct LayerCost {
  WeightEncoding encoding = WeightEncoding::Float32;
  int32_t cluster = 0;
  int64_t macs = 0, multiplications = 0;
};
LayerCost layer_cost(const Graph& g, size_t ni, const QuantizeOptions& opt) {
  size_t first = g.nodes.size(), last = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (is_layer(g.nodes[i])) {
      first = std::min(first, i);
      last = i;
    }
  const Node& n = g.nodes[ni];
  const auto [o_n, i_n, kh, kw] = n.weights.shape;
  const ref::Shape3 os = shape3(g.tensors[n.outputs[0]]);
  const int64_t plane = int64_t{os.h} * os.w;
  LayerCost c;
  const auto it = opt.layers.find(n.name);
  c.encoding = it != opt.layers.end() ? it->second
               : ((ni == first && opt.keep_first_8bit) || (ni == last && opt.keep_last_8bit)) ? WeightEncoding::Int8PerChannel
                                                                                             : opt.encoding;
  c.cluster = opt.cluster <= 0 ? i_n : std::min(opt.cluster, i_n);
  c.macs = int64_t{o_n} * plane * i_n * kh * kw;
  const int64_t groups = (i_n + c.cluster - 1) / c.cluster;
  c.multiplications = c.encoding != WeightEncoding::TernaryClustered ? c.macs
                      : opt.shape == ClusterShape::Kernels         ? int64_t{o_n} * plane * groups
                                                                   : int64_t{o_n} * plane * kh * kw * groups;
  return c;
}

// One conversion with the encodings the options give (pass: 0 alone, else 1 or 2 of two).
Graph quantize_pass(const Graph& float_graph, const QuantizeOptions& opt, QuantizeReport* report,
                    const Progress& progress, int pass) {
  // 1. Calibration images, fitted and normalized.
  const auto files = list_images(opt.calib_dir, opt.calib_count);
  const Tensor& input = float_graph.input();
  const auto batch = static_cast<int32_t>(files.size());
  std::vector<Image> images(files.size());
  std::vector<float> x(static_cast<size_t>(input.elements()) * batch);
  tbb::parallel_for(size_t{0}, files.size(), [&](size_t i) {
    images[i] = fit_to_input(decode_image(files[i]), float_graph.metadata, input.shape[1], input.shape[2]);
    normalize(images[i], float_graph.metadata, std::span(x).subspan(i * input.elements(), input.elements()));
  });

  // 2. Types now; each exponent from the float network's values as the pass below reaches its
  // tensor (MaxPool, Flatten and Relu keep their input's; int32 outputs follow their layer).
  Graph g = float_graph;  // becomes the integer graph, layer by layer
  assign_types(g);
  auto set_exponent = [&](int32_t t, std::span<const float> values) {
    Tensor& tt = g.tensors[t];
    if (tt.type == ElementType::Int32) return;
    Sample sample;
    sample.add(values);
    tt.exponent = choose_exponent(sample, range_of(tt.type), opt.lse_exponents);
  };
  set_exponent(g.inputs[0], x);

  // 3. Layers in order, float and integer networks side by side.
  size_t layer_count = 0;
  for (const Node& n : g.nodes) layer_count += is_layer(n);

  std::vector<size_t> last_use(g.tensors.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int32_t t : g.nodes[i].inputs) last_use[t] = i;
  std::vector<std::vector<float>> fv(g.tensors.size());    // float network
  std::vector<std::vector<int32_t>> iv(g.tensors.size());  // integer network
  fv[g.inputs[0]] = std::move(x);
  iv[g.inputs[0]] = quantize_images(g, images);

  QuantizeReport rep;
  rep.calibration_images = files;
  size_t layer_index = 0;
  // Where each layer's output joins the trunk: following single consumers from the layer to the
  // first Add, the tensor that enters it (layers without one, e.g. the classifier: none).
  std::vector<std::vector<size_t>> consumers(g.tensors.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int32_t t : g.nodes[i].inputs) consumers[t].push_back(i);
  std::vector<std::vector<std::pair<int32_t, size_t>>> joining(g.nodes.size());  // add -> (tensor, report index)
  auto power = [](const std::vector<float>& v) {
    double p = 0;
    for (float x : v) p += double(x) * x;
    return p;
  };
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const auto start = std::chrono::steady_clock::now();
    Node& n = g.nodes[ni];
    const Node& fnode = float_graph.nodes[ni];
    const int32_t out_t = n.outputs[0];
    const Tensor& in_tensor = g.tensors[n.inputs[0]];
    const int64_t out_n = g.tensors[out_t].elements();
    std::vector<const float*> fins;
    std::vector<const int32_t*> iins;
    for (int32_t t : n.inputs) {
      fins.push_back(fv[t].data());
      iins.push_back(iv[t].data());
    }
    fv[out_t].resize(out_n * batch);
    iv[out_t].resize(out_n * batch);
    const bool keeps_exponent = n.op == OpCode::MaxPool || n.op == OpCode::Flatten || n.op == OpCode::Relu;

    if (!is_layer(n)) {
      run_float_node(float_graph, fnode, nullptr, nullptr, batch, fins, fv[out_t].data());
      if (!joining[ni].empty()) {
        const double total = power(fv[out_t]);
        std::map<int32_t, double> branch;  // each entering tensor's power, once for all its layers
        for (const auto& [t, li] : joining[ni]) {
          auto [it, fresh] = branch.try_emplace(t, 0.0);
          if (fresh) it->second = power(fv[t]);
          rep.layers[li].trunk_share = total > 0 ? it->second / total : 1.0;
        }
      }
      if (keeps_exponent) g.tensors[out_t].exponent = in_tensor.exponent;
      else set_exponent(out_t, fv[out_t]);
      run_int_node(g, n, nullptr, batch, iins, iv[out_t].data());
    } else {
      const ref::Shape3 is = shape3(in_tensor), os = shape3(g.tensors[out_t]);
      const auto [o_n, i_n, kh, kw] = fnode.weights.shape;
      const auto w = fnode.weights.codes.as<float>();
      const auto b = fnode.bias.as<float>();
      // The float layer, before and after its activation; the output's exponent from the latter.
      Node pre = fnode;
      pre.activation = Activation::None;
      std::vector<float> yf(out_n * batch);
      const bool conv = n.op == OpCode::Conv;
      const auto packed_f = conv ? ref::pack_conv_weights(w.data(), o_n, i_n, kh, kw) : std::vector<float>{};
      run_float_node(float_graph, pre, packed_f.data(), nullptr, batch, fins, yf.data());
      fv[out_t] = yf;
      if (n.activation == Activation::Relu)
        for (float& v : fv[out_t]) v = std::max(v, 0.0f);
      set_exponent(out_t, fv[out_t]);

      quant::LayerSpec spec;
      const LayerCost cost = layer_cost(float_graph, ni, opt);
      spec.encoding = cost.encoding;
      spec.cluster = cost.cluster;
      spec.shape = opt.shape;
      spec.threshold = opt.threshold;
      // Keep |bias| * 2^(f_in + e_o) below 2^30 (headroom for the bias correction), and the
      // requantization shift f_in + e_o - f_out within what prepare_layer accepts.
      for (int32_t o = 0; o < o_n; ++o) {
        const int32_t bias_room = static_cast<int32_t>(std::floor(std::log2(std::ldexp(1.0, 30) / (std::abs(b[o]) + 1.0))));
        spec.exponent_cap.push_back(std::min(bias_room, 48 + g.tensors[out_t].exponent) - in_tensor.exponent);
      }

      // The integer network's input to this layer, as real values (exact: m * 2^-f).
      const int64_t in_n = in_tensor.elements();
      const float unit = static_cast<float>(std::ldexp(1.0, -in_tensor.exponent));
      std::vector<float> xq(static_cast<size_t>(in_n) * batch);
      for (size_t j = 0; j < xq.size(); ++j) xq[j] = static_cast<float>(iv[n.inputs[0]][j]) * unit;
      const Rows rows = im2col_rows(xq, is, n.window, os, batch, opt.max_rows);
      const int64_t plane = int64_t{os.h} * os.w;
      std::vector<float>().swap(xq);
      // The float layer's pre-activation output at the sampled pixels.
      std::vector<float> yfr(static_cast<size_t>(rows.rows) * o_n);
      for (int64_t r = 0; r < rows.rows; ++r) {
        const int64_t p = r * rows.stride, im = p / plane, pix = p % plane;
        for (int32_t o = 0; o < o_n; ++o) yfr[r * o_n + o] = yf[(im * o_n + o) * plane + pix];
      }

      // A layer kept in float (--layer NAME=float) keeps its weights; it is "quantized" to itself.
      quant::QuantizedLayer ql;
      std::vector<float> given(w.begin(), w.end());  // the weights the quantizer was given
      if (spec.encoding == WeightEncoding::Float32) ql.dequantized.assign(w.begin(), w.end());
      else if (opt.gptq) {
        std::vector<double> h = gram(rows);
        // Where the sample has at least kRefitRows rows per weight column, the weights are first
        // refitted so that this layer, on the quantized network's inputs, reproduces the float
        // network's outputs (weight_quant.h); with fewer rows (stage 5 and the last layer see
        // 50 x 49 and 50 pixels) least squares would fit the calibration images' noise.
        if (rows.rows >= kRefitRows * rows.k) {
          std::vector<float> target(yfr.size());  // X_f w at the sampled pixels
          for (size_t j = 0; j < yfr.size(); ++j) target[j] = yfr[j] - b[j % o_n];
          std::vector<float> xt(static_cast<size_t>(rows.k) * o_n);
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(rows.k), o_n, static_cast<int>(rows.rows),
                      1.0f, rows.cols.data(), static_cast<int>(rows.k), target.data(), o_n, 0.0f, xt.data(), o_n);
          given = quant::refit_to_inputs(w, o_n, static_cast<int32_t>(rows.k), h, {xt.begin(), xt.end()});
          ql = quant::quantize_gptq(given, fnode.weights.shape, spec, std::move(h));
        } else {
          ql = quant::quantize_gptq(w, fnode.weights.shape, spec, std::move(h));
        }
      } else ql = quant::quantize_rtn(w, fnode.weights.shape, spec);

      // The quantized layer's pre-activation output (float bias) on the integer network's input,
      // at the same pixels.
      std::vector<float> yq(yfr.size());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows.rows), o_n, static_cast<int>(rows.k),
                  1.0f, rows.cols.data(), static_cast<int>(rows.k), ql.dequantized.data(), static_cast<int>(rows.k),
                  0.0f, yq.data(), o_n);
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
        for (size_t j = 0; j < given.size(); ++j) given[j] -= ql.dequantized[j];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows.rows), o_n, static_cast<int>(rows.k),
                    1.0f, rows.cols.data(), static_cast<int>(rows.k), given.data(), static_cast<int>(rows.k), 0.0f,
                    yq.data(), o_n);  // yq is no longer needed
        for (float v : yq) added += double(v) * v;
      }

      Tensor& out_tensor = g.tensors[out_t];
      if (spec.encoding == WeightEncoding::Float32) {
        if (out_tensor.type == ElementType::Int32) out_tensor.exponent = choose_exponent([&] {
            Sample s;
            s.add(fv[out_t]);
            return s;
          }(), {-(1 << 30), 1 << 30}, false);
        std::vector<float> bias(o_n);  // the bias correction applies to float layers too
        for (int32_t o = 0; o < o_n; ++o) bias[o] = static_cast<float>(b[o] + shift[o]);
        n.bias = Blob::from_vector(bias);
      } else {
      // The integer layer: codes, scales, exponents, bias at the accumulator's scale.
      Weights& wq = n.weights;
      wq.encoding = spec.encoding;
      wq.cluster_size = spec.encoding == WeightEncoding::Int8PerChannel ? 0 : spec.cluster;
      wq.cluster_shape = spec.encoding == WeightEncoding::Int8PerChannel ? ClusterShape::Kernels : spec.shape;
      wq.codes = Blob::from_vector(pack_codes(spec.encoding, ql.codes));
      wq.scales = Blob::from_vector(ql.scales);
      wq.scale_exponents = Blob::from_vector(ql.exponents);
      if (out_tensor.type == ElementType::Int32) {
        int32_t f = 32;
        for (int8_t e : ql.exponents) f = std::min(f, in_tensor.exponent + e);
        out_tensor.exponent = std::clamp(f, -32, 32);
      }
      std::vector<int32_t> bias(o_n);
      for (int32_t o = 0; o < o_n; ++o) {
        const double v = std::nearbyint(std::ldexp(b[o] + shift[o], in_tensor.exponent + ql.exponents[o]));
        if (!(std::abs(v) < 2147483648.0))
          fail("cannot quantize layer '{}': the bias of channel {} does not fit int32 at its scale", n.name, o);
        bias[o] = static_cast<int32_t>(v);
      }
      n.bias = Blob::from_vector(bias);
      }
      run_int_layer(g, n, batch, iv[n.inputs[0]], iv[out_t]);

      LayerReport lr;
      lr.name = n.name;
      lr.encoding = spec.encoding;
      lr.cluster = n.weights.cluster_size;
      lr.shape = n.weights.cluster_shape;
      lr.zero_share = ql.zero_share;
      lr.weight_error = ql.weight_error;
      lr.output_error = den > 0 ? std::sqrt(num / den) : 0.0;
      lr.added_error = den > 0 ? std::sqrt(added / den) : 0.0;
      const Agreement agreement = compare(fv[out_t], iv[out_t], g.tensors[out_t]);
      lr.sqnr_db = agreement.sqnr_db;
      lr.cosine = agreement.cosine;
      lr.saturated = agreement.saturated;
      lr.macs = cost.macs;
      lr.multiplications = cost.multiplications;
      lr.bytes = int64_t(n.weights.codes.size + n.weights.scales.size + n.weights.scale_exponents.size + n.bias.size);
      if (spec.encoding == WeightEncoding::TernaryClustered || spec.encoding == WeightEncoding::Int4Clustered) {
        if (opt.cluster > i_n) lr.note = fmt::format("N={} exceeds the {} input channels: one cluster of {}", opt.cluster, i_n, i_n);
        else if (i_n % spec.cluster) lr.note = fmt::format("last cluster of {} channels, not {}", i_n % spec.cluster, spec.cluster);
      }
      lr.trunk_share = 1;
      for (int32_t t = out_t; consumers[t].size() == 1;) {
        const Node& c = g.nodes[consumers[t][0]];
        if (c.op == OpCode::Add) {
          joining[consumers[t][0]].push_back({t, rep.layers.size()});
          break;
        }
        t = c.outputs[0];
      }
      rep.layers.push_back(lr);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (progress) progress(pass, layer_index, layer_count, lr, seconds);
      ++layer_index;
    }
    for (int32_t t : n.inputs)
      if (last_use[t] == ni) {
        std::vector<float>().swap(fv[t]);
        std::vector<int32_t>().swap(iv[t]);
      }
  }
  if (report) *report = std::move(rep);
  return g;
}

}  // namespace

std::vector<std::string> choose_int4_layers(const QuantizeReport& ternary, double min_replaced,
                                            const std::map<std::string, WeightEncoding>& fixed) {
  double macs = 0, mults = 0;
  for (const LayerReport& l : ternary.layers) {
    macs += double(l.macs);
    mults += double(l.multiplications);
  }
  const double replaced = macs > 0 ? 1.0 - mults / macs : 0.0;
  if (replaced < min_replaced)
    fail("--min-replaced {:.1f}% cannot be met: with every layer it may make ternary, the model replaces {:.1f}% "
         "of its multiplications", 100 * min_replaced, 100 * replaced);
  // Noise power on the trunk per multiplication given back, largest first; ties in network order.
  std::vector<const LayerReport*> candidates;
  for (const LayerReport& l : ternary.layers)
    if (l.encoding == WeightEncoding::TernaryClustered && !fixed.contains(l.name) && l.macs > l.multiplications)
      candidates.push_back(&l);
  auto gain = [](const LayerReport* l) {
    return l->added_error * l->added_error * l->trunk_share / double(l->macs - l->multiplications);
  };
  std::stable_sort(candidates.begin(), candidates.end(), [&](auto* a, auto* b) { return gain(a) > gain(b); });
  // Multiplications that may come back (a share given as the report's own rounds to it).
  double budget = (replaced - min_replaced) * macs + 1e-9 * macs;
  std::vector<std::string> chosen;
  for (const LayerReport* l : candidates) {
    const double cost = double(l->macs - l->multiplications);
    if (cost > budget) continue;
    budget -= cost;
    chosen.push_back(l->name);
  }
  return chosen;
}

Graph quantize(const Graph& float_graph, const QuantizeOptions& opt, QuantizeReport* report, const Progress& progress) {
  if (opt.encoding == WeightEncoding::Float32) fail("quantize: the target encoding is float32");
  for (const auto& entry : opt.layers) {
    const std::string& name = entry.first;  // (clang 14 cannot capture a structured binding)
    const bool found = std::any_of(float_graph.nodes.begin(), float_graph.nodes.end(),
                                   [&](const Node& n) { return is_layer(n) && n.name == name; });
    if (!found) fail("cannot quantize: the model has no Conv or fully connected layer named '{}'", name);
  }
  for (const Node& n : float_graph.nodes)
    if (is_layer(n) && n.weights.encoding != WeightEncoding::Float32)
      fail("cannot quantize layer '{}': it is already {}", n.name, to_string(n.weights.encoding));

  if (opt.min_replaced <= 0) return quantize_pass(float_graph, opt, report, progress, 0);
  if (opt.encoding != WeightEncoding::TernaryClustered)
    fail("--min-replaced needs ternary weights: it keeps the ternary layers that lose most at int4");
  if (!(opt.min_replaced < 1)) fail("--min-replaced {} is not a share below 1", opt.min_replaced);
  // The share all-ternary replaces is known from the shapes: an unreachable one fails now, not
  // after the first pass (choose_int4_layers says the same).
  QuantizeReport shapes;
  for (size_t ni = 0; ni < float_graph.nodes.size(); ++ni)
    if (is_layer(float_graph.nodes[ni])) {
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
