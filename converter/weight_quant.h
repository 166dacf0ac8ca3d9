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
// The damping: 0.01 (a heavier one, 0.1, lowered ResNet-50's held-out error a little and raised
// ResNet-8's: refit_damping below).
inline constexpr double kGptqDamp = 0.01;
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

// The refit's damping for a layer of k columns refitted on `rows` sampled rows (rows >= 2 k).
// The refit learns what its calibration photos' inputs carry from the layers before, noise
// included: in stage 5 of ResNet-50, 250 photos give 12,250 rows for the 4,608 columns of a 3x3
// layer, and ternary N=4 kernels damped by 0.01 scored a logit SQNR of 21.7 dB on its 250
// calibration photos against 12.3 dB on the 250 others. A ridge penalty that stays the same
// while the rows shrink is kRefitDampRatio * k / rows of the mean diagonal: about 1 in ResNet-50's
// stage 5 on 250 photos, 0.1 where the layer sample holds its 32 rows a column, at most 1.5.
// Against 0.01, ResNet-50 two folds: ternary N=4 kernels 85.8 -> 87.6 % (+1.8 +- 0.9), 12.3 ->
// 12.8 dB, cross-entropy -0.032 +- 0.012; N=4 channels, int4 and int8 +0.4 to +0.6 dB; ResNet-8
// (32 rows a column or more everywhere) neutral, where a constant 1.0 cost its N=4 kernels 3.6
// points (docs/quantization.md, "The layer-wise fit follows its calibration photos"). Ternary
// clusters of more than 4 weights keep 0.01: their codes lose much of their inputs' scale
// upstream, which only the weight-by-weight refit takes back (ResNet-50 N=64 damped by 1: -0.7 dB).
inline constexpr double kRefitDampRatio = 3.0, kRefitDampCoarse = 0.01;
double refit_damping(const LayerSpec& spec, int64_t k, int64_t rows);

}  // namespace trit::quant
