// What a conversion reports: per layer, the encoding chosen, how much each step lost, and the
// cost in multiplications; for the whole model, the share of multiplications replaced by
// additions (the paper's own metric). trit-convert prints it as it goes and writes it as JSON
// (--report); scripts/plot_layer_report.py draws it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reconstruct/reconstruct.h"
#include "trit/graph.h"

namespace trit {

struct LayerReport {
  std::string name;
  WeightEncoding encoding = WeightEncoding::Float32;
  int32_t cluster = 0;
  ClusterShape shape = ClusterShape::Kernels;
  double zero_share = 0, weight_error = 0;
  // The layer's pre-activation output on the quantized network's inputs against the float
  // layer's on the float network's, at the sampled pixels: ||yq - yf|| / ||yf||.
  double output_error = 0;
  // What quantizing this layer's weights adds by itself: ||X_q (v - q)|| / ||yf|| at the same
  // pixels, X_q the quantized network's inputs, v the weights the quantizer was given (refitted
  // or float), q the quantized ones. 0 for a layer kept in float.
  double added_error = 0;
  // For a layer whose output reaches a residual Add through single consumers (a branch of a
  // block), the power of what it feeds into the Add over the power of the Add's output on the
  // float network (the share of the trunk its noise rides on); 1 for the others.
  double trunk_share = 1;
  // The integer network's actual output tensor (after requantization, saturation and the
  // activation) against the float network's, over every calibration value: signal-to-
  // quantization-noise ratio in dB, cosine similarity, and the share of values at the type's
  // saturation limit (u8: 255; s8: -128 or 127; int32 outputs: 0).
  double sqnr_db = 0, cosine = 0, saturated = 0;
  int64_t macs = 0, multiplications = 0;  // per image; multiplications left after clustering
  int64_t bytes = 0;                      // codes, scales, exponents and bias in the file
  std::string note;                       // e.g. a shorter last cluster
};

// The share of multiplications replaced by additions over these layers: 1 - sum of
// multiplications / sum of multiply-accumulates (0 when there are none).
double replaced_share(const std::vector<LayerReport>& layers);

struct QuantizeReport {
  std::vector<LayerReport> layers;
  std::vector<recon::BlockResult> blocks;  // --reconstruct: each block's optimization
  std::vector<std::string> calibration_images;
  double replaced_share() const { return trit::replaced_share(layers); }
  std::string json() const;
};

// How an integer tensor q * 2^-exponent follows the float one f (same length): SQNR in dB,
// cosine similarity, and the share of values at the saturation limits of t's type (see
// LayerReport::sqnr_db).
struct Agreement {
  double sqnr_db = 0, cosine = 0, saturated = 0;
};
Agreement compare(const std::vector<float>& f, const std::vector<int32_t>& q, const Tensor& t);

}  // namespace trit
