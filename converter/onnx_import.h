// ONNX -> trit Graph, float32 weights.
//
// Reads Conv (strides, explicit pads of any asymmetry or auto_pad, bias), BatchNormalization
// (folded into the Conv before it), Relu (fused into the Conv, Add or Gemm before it when that is
// its only reader), Add, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape (as a flatten
// to [N, K]), Gemm and MatMul (with a following Add of a constant folded in as the bias), and
// Constant. Any other op, or an attribute trit cannot honour (groups, dilations, ceil_mode,
// broadcasting adds), throws trit::Error naming the node and the reason:
//   "cannot import ONNX 'm.onnx': node 'conv7' (op Conv): group 32 is not supported".
//
// The model is untrusted: every index, shape and byte count is checked before use, and the
// resulting graph goes through check_graph.
#pragma once

#include <string>

#include "trit/graph.h"

namespace trit {

// What a folded batch norm remembers of the data the network was trained on (synthetic
// calibration, synthetic/synthesize.h, matches it): over that data, the output of the Conv it was
// folded into (before any ReLU) had, per output channel c, mean[c] = beta[c] and standard
// deviation stddev[c] = |gamma[c]| sqrt(var[c] / (var[c] + eps)). A constant bias added after the
// batch norm shifts the mean with it. Kept by the converter only; a model file holds none of it.
struct BatchNormStatistics {
  int32_t node = -1;  // the Conv's index in the imported graph
  std::vector<float> mean, stddev;
};

struct ImportStats {
  int folded_batch_norms = 0;
  int fused_relus = 0;
  int folded_biases = 0;
  int64_t parameters = 0;
  std::vector<BatchNormStatistics> batch_norms;  // in node order, one per Conv at most
  bool preprocessing = false;  // the file's metadata_props gave the preprocessing
};

// The ONNX metadata_props keys that give a model's preprocessing (scripts/fetch_resnet50.sh writes
// them; any may be absent):
//   trit.channel_order   RGB or BGR
//   trit.mean            per input channel, model order, pixel units: "103.939,116.779,123.68"
//   trit.scale           per input channel divisor, > 0
//   trit.resize_shorter  the shorter side before the centre crop; 0: resize straight to the input
// A value that does not parse, or a list of the wrong length, is an import error.
//
// The Graph gets the metadata those keys give, neutral where absent (RGB, mean 0, scale 1, no
// resize), no labels, and its source.
Graph import_onnx(const std::string& path, ImportStats* stats = nullptr);
Graph import_onnx_bytes(const std::string& bytes, const std::string& name, ImportStats* stats = nullptr);

}  // namespace trit
