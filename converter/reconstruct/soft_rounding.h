// Learned rounding of one layer's integer weights (AdaRound, arXiv:2004.10568, extended to the
// clustered ternary and int4 encodings), with its cluster scales and bias as continuous values.
//
// Each weight chooses between two neighbouring codes: its layer-wise code c (the starting point)
// and c + d, d = +-1 toward the weight the layer-wise fit quantized (its refitted float weight),
// or away from it where c + d would leave the encoding's range. The choice is the soft
//   h(V) = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1),  zeta = 1.1, gamma = -0.1,
// and the weight W = alpha_c * (c + d h(V)), with alpha_c = alpha0_c * exp(s_c) the cluster's
// scale (alpha0_c = m_c 2^-e_o, the layer-wise scale). V starts where h = 0.02: the layer-wise
// result, nearly exactly. The regularizer sum 1 - |2h - 1|^beta pushes every h to 0 or 1 as
// beta is lowered. Hard: c + d where h >= 1/2, else c; each scale rounded back to an integer
// mantissa with the channel's exponent, clamped to [1, max_cluster_scale].
#pragma once

#include <cstdint>
#include <vector>

#include "trit/graph.h"
#include "weight_quant.h"

namespace trit::recon {

class SoftRounding {
 public:
  // From an emitted integer layer (node n of g) and the float weights its quantization started
  // from ([O][K], the refitted ones).
  SoftRounding(const Graph& g, const Node& n, const std::vector<float>& given);

  int32_t outputs() const { return o_; }
  int64_t columns() const { return k_; }
  // W [O][K]: soft, or as it will be rounded. Soft weights also keep h(V) and h'(V) for
  // backward() and regularizer(), which must follow a soft weights() of the same V.
  void weights(bool hard, float* w);
  // The real bias per output channel.
  std::vector<float>& bias() { return bias_; }
  // The variables Adam updates: V (per weight) and s (per cluster).
  std::vector<float>& v() { return v_; }
  std::vector<float>& log_scale() { return s_; }
  // From dL/dW: dL/dV (written) and dL/ds (written).
  void backward(const float* dw, float* dv, float* ds) const;
  // lambda * sum 1 - |2h - 1|^beta; adds its gradient to dv.
  double regularizer(double beta, double lambda, float* dv) const;
  // Share of weights whose hard choice differs from the layer-wise code.
  double flipped() const;
  // The hard result, as emit_layer takes it (codes, mantissas, exponents).
  quant::QuantizedLayer result() const;

 private:
  double h(float v) const;
  double alpha(int64_t cluster) const;
  std::vector<float> h_, dh_;  // per weight, at the last soft weights()
  WeightEncoding encoding_;
  int32_t o_ = 0, max_scale_ = 0;
  int64_t k_ = 0;
  std::vector<int8_t> base_, step_, exponents_;
  std::vector<int32_t> cluster_;  // per weight
  std::vector<double> alpha0_;     // per cluster
  std::vector<float> v_, s_, bias_;
};

}  // namespace trit::recon
