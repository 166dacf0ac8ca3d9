#include "int_node.h"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "float_ref.h"
#include "int_ref.h"
#include "trit/error.h"

namespace trit {

UnpackedWeights unpack_weights(const Node& n) {
  const Weights& w = n.weights;
  return {w, unpack_codes(w, w.codes.as<uint8_t>(), n.name), w.scales.as<uint8_t>()};
}

PreparedLayer prepare_layer(const Graph& g, const Node& n) {
  PreparedLayer p = prepare_requant(g, n);
  if (!p.is_float) {
    const UnpackedWeights u = unpack_weights(n);
    p.packed = iref::expand_weights({u.layout, u.codes, u.scales});
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
    const Range r = output_range(n, out);
    p.lo = r.lo;
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
  const Range r = output_range(n, out);
  p.lo = r.lo;
  p.hi = r.hi;
  return p;
}

void run_int_node(const Graph& g, const Node& n, const PreparedLayer* layer, int32_t batch,
                  const std::vector<const int32_t*>& inputs, int32_t* out) {
  const Tensor& in_t = g.tensors[n.inputs[0]];
  const Tensor& out_t = g.tensors[n.outputs[0]];
  const int64_t in_n = in_t.elements(), out_n = out_t.elements();
  const Shape3 is = shape3(in_t), os = shape3(out_t);
  const int32_t* in = inputs[0];
  const Range r = output_range(n, out_t);
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
    case OpCode::Add: {  // elementwise: split over the threads, the same bits
      const Tensor& b_t = g.tensors[n.inputs[1]];
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, out_n * batch, 65536), [&](const tbb::blocked_range<int64_t>& b) {
        iref::add(in + b.begin(), in_t.exponent, inputs[1] + b.begin(), b_t.exponent, static_cast<int64_t>(b.size()),
                  out_t.exponent, r.lo, r.hi, out + b.begin());
      });
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

}  // namespace trit
