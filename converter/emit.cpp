#include "emit.h"

#include <algorithm>
#include <cmath>

#include "trit/error.h"

namespace trit {

void emit_layer(Graph& g, Node& n, const LayerEmission& e) {
  const Tensor& in_tensor = g.tensors[n.inputs[0]];
  Tensor& out_tensor = g.tensors[n.outputs[0]];
  const auto o_n = static_cast<int32_t>(e.bias.size());
  if (e.encoding == WeightEncoding::Float32) {
    if (out_tensor.type == ElementType::Int32)
      out_tensor.exponent = choose_exponent(*e.float_output, {-(1 << 30), 1 << 30}, false);
    std::vector<float> bias(o_n);
    for (int32_t o = 0; o < o_n; ++o) bias[o] = static_cast<float>(e.bias[o]);
    n.bias = Blob::from_vector(bias);
    return;
  }
  const quant::QuantizedLayer& ql = *e.quantized;
  Weights& wq = n.weights;
  wq.encoding = e.encoding;
  wq.cluster_size = e.encoding == WeightEncoding::Int8PerChannel ? 0 : e.cluster;
  wq.cluster_shape = e.encoding == WeightEncoding::Int8PerChannel ? ClusterShape::Kernels : e.shape;
  wq.codes = Blob::from_vector(pack_codes(e.encoding, ql.codes));
  wq.scales = Blob::from_vector(ql.scales);
  wq.scale_exponents = Blob::from_vector(ql.exponents);
  if (out_tensor.type == ElementType::Int32) {
    int32_t f = 32;
    for (int8_t x : ql.exponents) f = std::min(f, in_tensor.exponent + x);
    out_tensor.exponent = std::clamp(f, -32, 32);
  }
  std::vector<int32_t> bias(o_n);
  for (int32_t o = 0; o < o_n; ++o) {
    const double v = std::nearbyint(std::ldexp(e.bias[o], in_tensor.exponent + ql.exponents[o]));
    if (!(std::abs(v) < 2147483648.0))
      fail("cannot quantize layer '{}': the bias of channel {} does not fit int32 at its scale", n.name, o);
    bias[o] = static_cast<int32_t>(v);
  }
  n.bias = Blob::from_vector(bias);
}

}  // namespace trit
