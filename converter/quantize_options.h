// What trit-convert asks the quantizer for (quantize.h). options.h translates the command line
// into these.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "trit/graph.h"
#include "weight_quant.h"

namespace trit {

struct QuantizeOptions {
  WeightEncoding encoding = WeightEncoding::TernaryClustered;
  int32_t cluster = 4;  // 0: the whole input (one scale per output channel and cluster shape)
  ClusterShape shape = ClusterShape::Kernels;
  bool gptq = true;     // false: round to nearest (the paper's method)
  quant::Threshold threshold = quant::Threshold::Exact;
  bool bias_correction = true;
  bool keep_first_8bit = true;
  bool keep_last_8bit = true;
  std::map<std::string, WeightEncoding> layers;  // per-layer encodings, by node name
  std::string calib_dir;      // calibration images: the first calib_count of this folder (calibration.h)
  int32_t calib_count = 50;
  bool lse_exponents = true;  // false: the largest magnitude decides
  int32_t max_rows = 16384;   // im2col rows sampled per layer for the Gram matrix
  // Automatic mixed precision (ternary only; 0: off): a first pass converts every layer it may
  // as ternary and measures what each one adds (LayerReport::added_error); the second keeps at
  // int4 the layers that lose most per multiplication given back, while the share of
  // multiplications replaced stays at least min_replaced (mixed_precision.h).
  double min_replaced = 0;
};

}  // namespace trit
