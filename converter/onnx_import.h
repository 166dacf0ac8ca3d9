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

struct ImportStats {
  int folded_batch_norms = 0;
  int fused_relus = 0;
  int folded_biases = 0;
  int64_t parameters = 0;
};

// The Graph gets neutral metadata (RGB, mean 0, scale 1, no resize, no labels) and its source.
Graph import_onnx(const std::string& path, ImportStats* stats = nullptr);
Graph import_onnx_bytes(const std::string& bytes, const std::string& name, ImportStats* stats = nullptr);

}  // namespace trit
