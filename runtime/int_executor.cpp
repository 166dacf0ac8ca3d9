#include "trit/int_executor.h"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include <array>
#include <cmath>
#include <limits>

#include "../kernels/int_ref.h"
#include "../kernels/requant.h"
#include "trit/error.h"
#include "trit/weight_codes.h"

namespace trit {
namespace {

ref::Shape3 shape3(const Tensor& t) {
  return t.shape.size() == 3 ? ref::Shape3{t.shape[0], t.shape[1], t.shape[2]} : ref::Shape3{t.shape[0], 1, 1};
}

}  // namespace

Range range_of(ElementType type) {
  switch (type) {
    case ElementType::UInt8: return {0, 255};
    case ElementType::Int8: return {-128, 127};
    case ElementType::Int32: return {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
    case ElementType::Float32: break;
  }
  fail("float32 tensors have no integer range");
}

bool is_integer_model(const Graph& g) { return g.input().type != ElementType::Float32; }

PreparedLayer prepare_layer(const Graph& g, const Node& n) {
  PreparedLayer p = prepare_requant(g, n);
  if (!p.is_float) {
    const Weights& w = n.weights;
    p.packed = iref::expand_weights({&w, unpack_codes(w, n.name), w.scales.as<uint8_t>()});
  }
  return p;
}

PreparedLayer prepare_requant(const Graph& g, const Node& n) {
  const Weights& w = n.weights;
  const Tensor& in = g.tensors[n.inputs[0]];
  const Tensor& out = g.tensors[n.outputs[0]];
  if (in.type == ElementType::Float32 || out.type == ElementType::Float32)
    fail("cannot prepare layer '{}': its input and output must be integer tensors", n.name);
  if (w.encoding == WeightEncoding::Float32) {
    PreparedLayer p;
    p.is_float = true;
    p.float_packed = ref::pack_conv_weights(w.codes.as<float>().data(), w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    const Range r = range_of(out.type);
    p.lo = n.activation == Activation::Relu ? std::max(r.lo, 0) : r.lo;
    p.hi = r.hi;
    return p;
  }
  const auto scales = w.scales.as<uint8_t>();
  const auto exponents = w.scale_exponents.as<int8_t>();
  const auto bias = n.bias.as<int32_t>();
  const int32_t o_n = w.shape[0];
  PreparedLayer p;
  p.multiplier.resize(o_n);
  p.shift.resize(o_n);
  p.bias.resize(o_n);
  for (int32_t o = 0; o < o_n; ++o) {
    p.multiplier[o] = w.encoding == WeightEncoding::Int8PerChannel ? scales[o] : 1;
    p.shift[o] = in.exponent + exponents[o] - out.exponent;
    if (p.shift[o] < -24 || p.shift[o] > 62)
      fail("cannot prepare layer '{}': channel {} needs a shift of {}, outside [-24, 62]", n.name, o, p.shift[o]);
    p.bias[o] = bias[o];
  }
  const Range r = range_of(out.type);
  p.lo = n.activation == Activation::Relu ? std::max(r.lo, 0) : r.lo;
  p.hi = r.hi;
  return p;
}

void run_int_node(const Graph& g, const Node& n, const PreparedLayer* layer, int32_t batch,
                  const std::vector<const int32_t*>& inputs, int32_t* out) {
  const Tensor& in_t = g.tensors[n.inputs[0]];
  const Tensor& out_t = g.tensors[n.outputs[0]];
  const int64_t in_n = in_t.elements(), out_n = out_t.elements();
  const ref::Shape3 is = shape3(in_t), os = shape3(out_t);
  const int32_t* in = inputs[0];
  const Range r = range_of(out_t.type);
  switch (n.op) {
    case OpCode::Conv:
    case OpCode::FullyConnected: {
      if (layer->is_float) {
        // Exact dequantization, the float reference, then round half up to the output's exponent.
        const float unit = static_cast<float>(std::ldexp(1.0, -in_t.exponent));
        const double scale = std::ldexp(1.0, out_t.exponent);
        tbb::parallel_for(0, batch, [&](int32_t im) {
          std::vector<float> x(in_n), y(out_n);
          for (int64_t j = 0; j < in_n; ++j) x[j] = static_cast<float>(in[im * in_n + j]) * unit;
          ref::conv2d(x.data(), is, layer->float_packed.data(), n.bias.as<float>().data(), n.window, n.activation,
                      y.data(), os, 0, os.c);
          for (int64_t j = 0; j < out_n; ++j)
            out[im * out_n + j] = static_cast<int32_t>(std::clamp(std::floor(y[j] * scale + 0.5), double(layer->lo), double(layer->hi)));
        });
        break;
      }
      const iref::Requant rq{layer->multiplier, layer->shift, layer->bias, layer->lo, layer->hi};
      // The Requant above copies per call; cheap next to the convolution.
      tbb::parallel_for(tbb::blocked_range2d<int32_t>(0, batch, 1, 0, os.c, 64),
                        [&](const tbb::blocked_range2d<int32_t>& b) {
                          for (int32_t im = b.rows().begin(); im < b.rows().end(); ++im)
                            iref::conv2d(in + im * in_n, is, layer->packed.data(), n.window, rq,
                                         out + im * out_n, os, b.cols().begin(), b.cols().end());
                        });
      break;
    }
    case OpCode::Add: {
      const Tensor& b_t = g.tensors[n.inputs[1]];
      const int32_t lo = n.activation == Activation::Relu ? std::max(r.lo, 0) : r.lo;
      iref::add(in, in_t.exponent, inputs[1], b_t.exponent, out_n * batch, out_t.exponent, lo, r.hi, out);
      break;
    }
    case OpCode::Relu: iref::relu(in, out_n * batch, out); break;
    case OpCode::Flatten: std::copy(in, in + in_n * batch, out); break;
    case OpCode::MaxPool:
    case OpCode::AveragePool:
    case OpCode::GlobalAveragePool:
      tbb::parallel_for(0, batch, [&](int32_t im) {
        const int32_t* src = in + im * in_n;
        int32_t* dst = out + im * out_n;
        if (n.op == OpCode::MaxPool) iref::max_pool(src, is, n.window, dst, os);
        else if (n.op == OpCode::AveragePool)
          iref::average_pool(src, is, in_t.exponent, n.window, n.count_include_pad, dst, os, out_t.exponent, r.lo, r.hi);
        else iref::global_average_pool(src, is, in_t.exponent, dst, out_t.exponent, r.lo, r.hi);
      });
      break;
  }
}

void check_integer_graph(const Graph& g) {
  if (!is_integer_model(g)) fail("cannot prepare an integer executor: the model's input is float32");
  for (const Tensor& t : g.tensors)
    if (t.type == ElementType::Float32)
      fail("cannot prepare the integer model: tensor '{}' is float32", t.name);
  // Activations are 8-bit (the kernels' bounds rest on it); int32 is for outputs nobody reads.
  if (g.input().type == ElementType::Int32) fail("cannot prepare the integer model: its input is int32, not 8-bit");
  for (const Node& n : g.nodes)
    for (int32_t t : n.inputs)
      if (g.tensors[t].type == ElementType::Int32)
        fail("cannot prepare the integer model: node '{}' reads the int32 tensor '{}'", n.name, g.tensors[t].name);
  for (const Node& n : g.nodes) {
    const Tensor& in = g.tensors[n.inputs[0]];
    const Tensor& out = g.tensors[n.outputs[0]];
    if (n.op == OpCode::Conv || n.op == OpCode::FullyConnected) {
      continue;  // prepare_layer checks layers
    } else if (n.op == OpCode::MaxPool || n.op == OpCode::Flatten || n.op == OpCode::Relu) {
      if (in.exponent != out.exponent)
        fail("cannot prepare the integer model: node '{}' ({}) must keep its input's exponent", n.name, to_string(n.op));
    } else if (n.op == OpCode::Add) {
      for (int32_t t : n.inputs)
        if (std::abs(g.tensors[t].exponent - out.exponent) > 24)
          fail("cannot prepare the integer model: node '{}' rescales by more than 2^24", n.name);
    } else if (std::abs(in.exponent - out.exponent) > 24) {
      fail("cannot prepare the integer model: node '{}' rescales by more than 2^24", n.name);
    }
  }
}

IntExecutor::IntExecutor(std::shared_ptr<const Graph> graph, bool dynamic_exponents)
    : graph_(std::move(graph)), dynamic_(dynamic_exponents) {
  const Graph& g = *graph_;
  check_integer_graph(g);
  layers_.resize(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].op == OpCode::Conv || g.nodes[i].op == OpCode::FullyConnected) layers_[i] = prepare_layer(g, g.nodes[i]);
  last_use_.assign(g.tensors.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int32_t t : g.nodes[i].inputs) last_use_[t] = i;
  for (int32_t t : g.outputs) last_use_[t] = SIZE_MAX;
}

std::vector<int32_t> quantize_images(const Graph& g, std::span<const Image> images) {
  const Tensor& in = g.input();
  const Metadata& m = g.metadata;
  const Range r = range_of(in.type);
  const size_t channels = static_cast<size_t>(in.shape[0]);
  // The table, in double: the same bits on every machine.
  std::vector<std::array<int32_t, 256>> lut(channels);
  for (size_t c = 0; c < channels; ++c)
    for (int p = 0; p < 256; ++p) {
      const double v = (p - static_cast<double>(m.mean[c])) / m.scale[c];
      lut[c][p] = static_cast<int32_t>(std::clamp(std::floor(std::ldexp(v, in.exponent) + 0.5),
                                                  static_cast<double>(r.lo), static_cast<double>(r.hi)));
    }
  const size_t plane = static_cast<size_t>(in.shape[1]) * in.shape[2];
  std::vector<int32_t> out(images.size() * channels * plane);
  for (size_t im = 0; im < images.size(); ++im) {
    const Image& img = images[im];
    if (img.width != in.shape[2] || img.height != in.shape[1] || img.pixels.size() != plane * 3)
      fail("cannot quantize a {}x{} image ({} bytes) for a {}x{} input", img.width, img.height, img.pixels.size(),
           in.shape[2], in.shape[1]);
    for (size_t c = 0; c < channels; ++c) {
      const size_t src = m.channel_order == ChannelOrder::BGR ? 2 - c : c;
      int32_t* dst = out.data() + (im * channels + c) * plane;
      for (size_t p = 0; p < plane; ++p) {
        const uint8_t* px = img.pixels.data() + p * 3;
        // A one-channel model reads the rounded mean of R, G and B.
        const int v = channels == 3 ? px[src] : (px[0] + px[1] + px[2] + 1) / 3;
        dst[p] = lut[c][v];
      }
    }
  }
  return out;
}

std::vector<int32_t> IntExecutor::quantize_input(std::span<const Image> images) const {
  return quantize_images(*graph_, images);
}

namespace {

// The largest exponent f in [-32, 32] for which every value v (of exponent `from`, one per
// channel group) rounds into [lo, hi] and every shift from - f lies in [-24, 62]. `from` holds
// each channel's exponent; lo_v/hi_v each channel's extreme values.
int32_t fitting_exponent(const std::vector<int32_t>& from, const std::vector<int64_t>& lo_v,
                         const std::vector<int64_t>& hi_v, int32_t lo, int32_t hi) {
  for (int32_t f = 32; f > -32; --f) {
    bool fits = true;
    for (size_t c = 0; c < from.size() && fits; ++c) {
      const int32_t s = from[c] - f;
      fits = s >= -24 && s <= 62 && rq::round_shift(hi_v[c], s) <= hi && rq::round_shift(lo_v[c], s) >= lo;
    }
    if (fits) return f;
  }
  return -32;
}

}  // namespace

// One image with exponents chosen per tensor as it is written (see the constructor's comment).
std::vector<int32_t> IntExecutor::run_dynamic(std::span<const int32_t> image) const {
  const Graph& g = *graph_;
  std::vector<std::vector<int32_t>> values(g.tensors.size());
  std::vector<int32_t> exps(g.tensors.size());
  for (size_t t = 0; t < g.tensors.size(); ++t) exps[t] = g.tensors[t].exponent;
  values[g.inputs[0]].assign(image.begin(), image.end());
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    const int32_t in = n.inputs[0], out = n.outputs[0];
    const Tensor& out_t = g.tensors[out];
    const int64_t out_n = out_t.elements();
    const Range r = range_of(out_t.type);
    const int32_t lo = (n.activation == Activation::Relu || n.op == OpCode::Relu) ? std::max(r.lo, 0) : r.lo;
    std::vector<int32_t>& dst = values[out];
    dst.resize(out_n);
    switch (n.op) {
      case OpCode::Conv:
      case OpCode::FullyConnected: {
        const PreparedLayer& p = layers_[ni];
        if (p.is_float) {  // a float layer keeps its calibrated output exponent
          Graph view;
          view.tensors = {g.tensors[in], out_t};
          view.tensors[0].exponent = exps[in];
          Node node = n;
          node.inputs = {0};
          node.outputs = {1};
          run_int_node(view, node, &p, 1, {values[in].data()}, dst.data());
          break;
        }
        const int32_t o_n = out_t.shape[0];
        const int64_t plane = out_n / o_n;
        // Raw accumulators: multiplier 1, no bias, no shift, the whole int32 range.
        const iref::Requant raw{std::vector<int32_t>(o_n, 1), std::vector<int32_t>(o_n, 0), std::vector<int64_t>(o_n, 0),
                                std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
        std::vector<int32_t> acc(out_n);
        iref::conv2d(values[in].data(), shape3(g.tensors[in]), p.packed.data(), n.window, raw, acc.data(), shape3(out_t), 0, o_n);
        const auto e = n.weights.scale_exponents.as<int8_t>();
        const int32_t shift_in = g.tensors[in].exponent - exps[in];  // stored bias scale -> actual
        std::vector<int64_t> v(out_n), lo_v(o_n, INT64_MAX), hi_v(o_n, INT64_MIN);
        std::vector<int32_t> from(o_n);
        for (int32_t o = 0; o < o_n; ++o) {
          const int64_t bias = rq::round_shift(p.bias[o], shift_in);
          from[o] = exps[in] + e[o];
          for (int64_t j = 0; j < plane; ++j) {
            const int64_t x = int64_t{acc[o * plane + j]} * p.multiplier[o] + bias;
            v[o * plane + j] = x;
            lo_v[o] = std::min(lo_v[o], x);
            hi_v[o] = std::max(hi_v[o], x);
          }
        }
        if (out_t.type != ElementType::Int32)
          exps[out] = fitting_exponent(from, lo == 0 ? std::vector<int64_t>(o_n, 0) : lo_v, hi_v, lo, r.hi);
        for (int32_t o = 0; o < o_n; ++o)
          for (int64_t j = 0; j < plane; ++j)
            dst[o * plane + j] = rq::saturate(rq::round_shift(v[o * plane + j], from[o] - exps[out]), lo, r.hi);
        break;
      }
      case OpCode::Add: {
        const int32_t b = n.inputs[1];
        const int32_t f = std::max(exps[in], exps[b]);
        std::vector<int64_t> sum(out_n);
        int64_t smin = INT64_MAX, smax = INT64_MIN;
        for (int64_t j = 0; j < out_n; ++j) {
          sum[j] = rq::round_shift(values[in][j], exps[in] - f) + rq::round_shift(values[b][j], exps[b] - f);
          smin = std::min(smin, sum[j]);
          smax = std::max(smax, sum[j]);
        }
        exps[out] = fitting_exponent({f}, {lo == 0 ? 0 : smin}, {smax}, lo, r.hi);
        for (int64_t j = 0; j < out_n; ++j) dst[j] = rq::saturate(rq::round_shift(sum[j], f - exps[out]), lo, r.hi);
        break;
      }
      case OpCode::AveragePool:
      case OpCode::GlobalAveragePool: {
        // A mean never exceeds the largest input: fit the input's extremes.
        const auto [mn, mx] = std::minmax_element(values[in].begin(), values[in].end());
        exps[out] = std::clamp(fitting_exponent({exps[in]}, {std::min<int64_t>(*mn, 0)}, {*mx}, r.lo, r.hi), exps[in] - 24, exps[in] + 24);
        [[fallthrough]];
      }
      default: {
        if (n.op == OpCode::MaxPool || n.op == OpCode::Flatten || n.op == OpCode::Relu) exps[out] = exps[in];
        // Run the node with the actual exponents in a graph view of one tensor pair.
        Graph view;
        view.tensors = {g.tensors[in], out_t};
        view.tensors[0].exponent = exps[in];
        view.tensors[1].exponent = exps[out];
        Node node = n;
        node.inputs = {0};
        node.outputs = {1};
        run_int_node(view, node, nullptr, 1, {values[in].data()}, dst.data());
        break;
      }
    }
    for (int32_t t : n.inputs)
      if (last_use_[t] == ni) std::vector<int32_t>().swap(values[t]);
  }
  // The caller reads the output at its stored exponent.
  const int32_t o = g.outputs[0];
  std::vector<int32_t> result = std::move(values[o]);
  if (exps[o] != g.tensors[o].exponent)
    for (int32_t& m : result)
      m = rq::saturate(rq::round_shift(m, exps[o] - g.tensors[o].exponent), std::numeric_limits<int32_t>::min(),
                       std::numeric_limits<int32_t>::max());
  return result;
}

std::vector<int32_t> IntExecutor::run(std::span<const int32_t> input, int32_t batch, const Observer& observer) const {
  const Graph& g = *graph_;
  const int64_t in_elems = g.input().elements();
  if (batch < 1 || static_cast<int64_t>(input.size()) != in_elems * batch)
    fail("cannot run model: {} input values for a batch of {} images of {} values", input.size(), batch, in_elems);
  if (dynamic_) {
    std::vector<int32_t> out;
    for (int32_t im = 0; im < batch; ++im) {
      const auto one = run_dynamic(input.subspan(im * in_elems, in_elems));
      out.insert(out.end(), one.begin(), one.end());
    }
    return out;
  }
  std::vector<std::vector<int32_t>> values(g.tensors.size());
  values[g.inputs[0]].assign(input.begin(), input.end());
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    std::vector<const int32_t*> ins;
    for (int32_t t : n.inputs) ins.push_back(values[t].data());
    std::vector<int32_t>& out = values[n.outputs[0]];
    out.resize(g.tensors[n.outputs[0]].elements() * batch);
    const bool layer = n.op == OpCode::Conv || n.op == OpCode::FullyConnected;
    run_int_node(g, n, layer ? &layers_[ni] : nullptr, batch, ins, out.data());
    if (observer) observer(ni, out);
    for (int32_t t : n.inputs)
      if (last_use_[t] == ni) std::vector<int32_t>().swap(values[t]);
  }
  return std::move(values[g.outputs[0]]);
}

std::vector<float> IntExecutor::classify(std::span<const Image> images) const {
  const auto out = run(quantize_input(images), static_cast<int32_t>(images.size()));
  const int32_t f = graph_->output().exponent;
  std::vector<float> logits(out.size());
  for (size_t j = 0; j < out.size(); ++j) logits[j] = static_cast<float>(std::ldexp(static_cast<double>(out[j]), -f));
  return logits;
}

}  // namespace trit
