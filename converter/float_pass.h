// The float network over the calibration images, streamed: step 2 of the quantizer (quantize.h).
//
// Every image goes through the float network once (float_executor.h, FloatNodes: the fused path,
// the same bits on every machine), a chunk of images at a time, and only statistics whose size
// does not grow with the number of images are kept:
//   - each tensor's exponent sample (exponents.h);
//   - each layer's output before its activation at the layer's sampled pixels (layer_sample.h),
//     [rows][O] floats in a spill file (spill_file.h): what the weight fit, the bias correction
//     and the report compare the integer network with;
//   - the power (sum of squares) of each tensor a residual Add reads or writes, for the trunk
//     shares (mixed_precision.h);
//   - the fitted images, as bytes, in a spill file: the integer network's passes read them.
// Peak memory: one chunk's tensors, the exponent samples, and one layer's sample when read.
// The float network does not depend on any quantization choice, so one pass serves the whole
// conversion (both passes of --min-replaced too).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "calibration.h"
#include "exponents.h"
#include "layer_sample.h"
#include "spill_file.h"
#include "trit/graph.h"

namespace trit {

struct FloatStatistics {
  int64_t images = 0;
  std::vector<ExponentSample> exponent;  // per tensor
  std::vector<SamplePlan> plan;          // per node (layers only)
  std::vector<double> power;             // per tensor (those Adds read or write; others 0)
  std::unique_ptr<SpillFile> outputs;    // layers' samples
  std::vector<int64_t> output_offset;    // per node: byte offset of its [rows][O] sample
  std::unique_ptr<ImageRecords> fitted;  // per image: height * width * 3 bytes

  // Layer `node`'s output before its activation at its sampled pixels, [rows][O].
  std::vector<float> layer_output(const Graph& g, size_t node) const;
};

// Called after each chunk with the images done so far.
using FloatProgress = std::function<void(int64_t done, int64_t total)>;

// Runs every image of `source` through `float_graph` in chunks of `chunk` images. Throws
// trit::Error for an image that cannot be read.
FloatStatistics float_pass(const Graph& float_graph, const CalibrationSource& source, int32_t chunk,
                           const FloatProgress& progress = {});

}  // namespace trit
