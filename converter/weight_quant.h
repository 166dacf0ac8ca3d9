// Weight quantization of one layer: clusters, thresholds, integer cluster scales, and the
// error-compensated (GPTQ / Optimal Brain Quantization) order of work.
//
// A layer's weights are a matrix W [O][K], K = I * KH * KW in [I][KH][KW] order. Each row is cut
// into clusters (see schema/trit.fbs): Kernels = N input channels x all taps, Channels = N input
// channels at one tap, Int8PerChannel = the whole row. Every cluster c of row o gets a real scale
// alpha_c, stored as an integer mantissa m_c with the row's exponent e_o:
// alpha_c ~= m_c * 2^-e_o, m_c at most max_cluster_scale(encoding) (trit/weight_codes.h: code *
// m_c must fit int8). Codes are chosen against that integer scale, so what the file holds is
// exactly what runs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "trit/graph.h"

namespace trit::quant {

enum class Threshold { Twn, Exact };

struct LayerSpec {
  WeightEncoding encoding = WeightEncoding::TernaryClustered;
  int32_t cluster = 4;  // N; for Int8PerChannel ignored
  ClusterShape shape = ClusterShape::Kernels;
  Threshold threshold = Threshold::Exact;
  // Per output channel, the largest exponent e_o allowed (e.g. so the bias still fits int32 at
  // the accumulator's scale); empty: only [-32, 32].
  std::vector<int32_t> exponent_cap;
};

// Ternary threshold and scale of one cluster: codes are sign(w) where |w| > delta, scale alpha.
//   Twn:   delta = 0.7 * mean |w|, alpha = mean of the kept |w|
//   Exact: the k largest |w| that maximise S_k^2 / k, alpha = S_k / k (the least-squares
//          optimum); delta lies halfway between the k-th and (k+1)-th largest |w|.
struct TernaryParams {
  double delta = 0, alpha = 0;
};
TernaryParams ternary_params(std::span<const double> w, Threshold threshold);

struct QuantizedLayer {
  std::vector<int8_t> codes;      // [O][K]
  std::vector<uint8_t> scales;    // per cluster, trit::cluster_of order
  std::vector<int8_t> exponents;  // per output channel
  std::vector<float> dequantized; // code * m_c * 2^-e_o, [O][K]
  double weight_error = 0;        // ||W - dequantized|| / ||W||
  double zero_share = 0;          // share of zero codes
};

// Round to nearest (the paper's method): each cluster's parameters from the weights alone.
QuantizedLayer quantize_rtn(std::span<const float> w, const std::array<int32_t, 4>& shape, const LayerSpec& spec);

// Error compensation: columns quantized cluster by cluster; each column's rounding error is
// spread over the columns not yet quantized through the upper Cholesky factor of H^-1, where
// H = X^T X (K x K, row-major, from calibration inputs) damped by `damp` times its mean diagonal.
// Parameters of a cluster are chosen when the cluster starts, from the compensated weights.
// Then the scales are refitted to the codes (refit_scales, with the same damped H).
//
// The dampings. A layer's weights are fitted (refit_to_inputs, then the codes and scales here)
// to its calibration inputs: in stage 5 of ResNet-50, 250 photos give 12,250 rows for 4,608
// columns, and the fit learns the particular error those photos' inputs carry from the layers
// before. Damped by 0.01, ternary N=4 kernels scored a logit SQNR of 21.7 dB on its 250
// calibration photos against 12.3 dB on the 250 others. Damped more, the fit gives up some of
// that for photos it has not seen, where the codes are fine enough that what the inputs lost
// upstream is small: ResNet-50, fold 1, held out, refit 1.0 and GPTQ 0.1 against 0.01 and 0.01:
// int8 +1.0 dB, int4 N=4 +0.9, ternary N=4 kernels +0.6 (refit 0.1, 0.3, 1, 3, 10: +0.4, +0.7,
// +0.6, +0.2, -0.1; GPTQ 0.1 and 1 alone: +0.2, 0.0), N=4 channels +0.5, but N=16 kernels -0.2 and
// N=64 kernels -0.9 (top-1 -7.6 +- 2.3): coarse codes lose much of their inputs' scale upstream,
// which only the weight-by-weight refit takes back (N=64 with refit 1.0 alone -0.7 dB, with GPTQ
// 0.1 alone +0.1 dB and top-1 -3.6 +- 2.1). So the heavier dampings are for int8, int4 and ternary
// clusters of at most 4 weights (N=8 was not measured), the light ones for larger clusters.
// docs/quantization.md, "The layer-wise fit follows its calibration photos".
inline constexpr double kGptqDampFine = 0.1, kRefitDampFine = 1.0;     // int8, int4, ternary N <= 4
inline constexpr double kGptqDampCoarse = 0.01, kRefitDampCoarse = 0.01;  // ternary N > 4
QuantizedLayer quantize_gptq(std::span<const float> w, const std::array<int32_t, 4>& shape, const LayerSpec& spec,
                             std::vector<double> h, double damp);

// The cluster scales of q refitted to its codes as they stand, against the layer's output on
// the calibration inputs: per output channel o, with T the row's codes spread one column per
// cluster (clusters whose codes are all 0 keep their scale),
//   alpha = argmin (w_o - T alpha)^T (H + lambda I) (w_o - T alpha),  lambda = damp * mean diag H,
// solved exactly (Cholesky) up to 256 such clusters a row, else by 48 steps of conjugate
// gradients from the scales q holds; then rounded to mantissas with the row's exponent, lowered
// where a mantissa would pass max_cluster_scale. A row takes the refit only where, rounded, it
// lowers that error, so no row's error rises. Codes do not change; dequantized and weight_error
// follow the new scales. Rows are independent: any thread count gives the same result.
void refit_scales(QuantizedLayer& q, std::span<const float> w, const std::array<int32_t, 4>& shape, const LayerSpec& spec,
                  const std::vector<double>& h, double damp);

// Weights refitted to the inputs the layer will really see: v = argmin ||T - X v||^2 +
// lambda ||v - w||^2 per output channel, where X are the quantized network's inputs (H = X^T X)
// and T = X_f w the float network's outputs (xt = X^T T, [K][O]); lambda = damp * mean diag(H).
// GPTQ on v with the same H then minimises ||X_f w - X q|| up to a constant: the layer also
// compensates the error its inputs carry from the quantized layers before it.
std::vector<float> refit_to_inputs(std::span<const float> w, int32_t o, int32_t k, const std::vector<double>& h,
                                   const std::vector<double>& xt, double damp);

}  // namespace trit::quant
