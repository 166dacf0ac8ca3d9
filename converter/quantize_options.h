// What trit-convert asks the quantizer for (quantize.h). options.h translates the command line
// into these.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "calibration.h"
#include "reconstruct/reconstruct.h"
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
  std::map<std::string, int32_t> layer_clusters;  // per-layer ternary cluster sizes (--min-replaced's choices)
  CalibrationSpec calibration;  // which images (calibration.h)
  bool lse_exponents = true;  // false: the largest magnitude decides
  int32_t chunk = 16;         // images the streamed passes hold at once (memory, not results)
  // Called as the float network's pass goes (images done, of all).
  std::function<void(int64_t done, int64_t total)> float_progress;
  // Block-wise reconstruction after the layer-wise pass (reconstruct/reconstruct.h), and what it
  // prints as it goes.
  bool reconstruct = false;
  recon::ReconstructOptions reconstruction;
  recon::BlockProgress block_progress;
  // Automatic mixed precision (ternary only; 0: off): measuring passes convert every layer they
  // may as ternary, at the cluster size asked and at N=2 and N=1 where those are smaller, and
  // measure what each layer adds (LayerReport::added_error); the final pass gives the layers
  // that lose most per multiplication given back a smaller cluster or int4, while the share of
  // multiplications replaced stays at least min_replaced (mixed_precision.h).
  double min_replaced = 0;
};

}  // namespace trit
