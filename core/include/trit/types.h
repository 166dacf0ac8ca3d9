// The vocabulary every layer of trit shares: element types, ops, weight encodings, windows,
// shapes and value ranges. Plain values, no ownership; the kernels take these and nothing of the
// graph (trit/graph.h builds on them).
//
// The numbers of the enums are the file format's (schema/trit.fbs): append only, never renumber.
#pragma once

#include <cstdint>

namespace trit {

enum class ElementType : int32_t { Float32 = 0, UInt8 = 1, Int8 = 2, Int32 = 3 };

enum class OpCode : int32_t {
  Conv = 0,
  Add = 1,
  MaxPool = 2,
  AveragePool = 3,
  GlobalAveragePool = 4,
  FullyConnected = 5,
  Flatten = 6,
  Relu = 7,
};

enum class Activation : int32_t { None = 0, Relu = 1 };

enum class WeightEncoding : int32_t {
  Float32 = 0,
  Int8PerChannel = 1,
  Int4Clustered = 2,
  TernaryClustered = 3,
};

enum class ClusterShape : int32_t { Kernels = 0, Channels = 1 };

enum class ChannelOrder : int32_t { RGB = 0, BGR = 1 };

const char* to_string(OpCode op);
const char* to_string(WeightEncoding encoding);
const char* to_string(ClusterShape shape);

// Kernel window of a convolution or pool. Pads are explicit and may be asymmetric.
struct Window {
  int32_t kernel_h = 1, kernel_w = 1;
  int32_t stride_h = 1, stride_w = 1;
  int32_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;

  // Output extent for an input extent, or 0 when the window does not fit.
  int32_t out_h(int32_t in_h) const;
  int32_t out_w(int32_t in_w) const;
};

// One image's feature map, C-major ([C][H][W]); a vector [C] is [C, 1, 1].
struct Shape3 {
  int32_t c = 1, h = 1, w = 1;
  int64_t size() const { return int64_t{c} * h * w; }
};

// Value range of an integer element type: u8 [0, 255], s8 [-128, 127], int32 its whole range.
struct Range {
  int32_t lo, hi;
};
// Throws trit::Error for Float32, which has no integer range.
Range range_of(ElementType type);
// The range a node writes into an integer tensor of `type`: the type's, floored at 0 when the
// node ends in a ReLU (a fused activation or a Relu op).
Range output_range(ElementType type, bool relu);

}  // namespace trit
