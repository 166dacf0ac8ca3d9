#include "trit/types.h"

#include <limits>

#include "trit/error.h"

namespace trit {

const char* to_string(OpCode op) {
  switch (op) {
    case OpCode::Conv: return "Conv";
    case OpCode::Add: return "Add";
    case OpCode::MaxPool: return "MaxPool";
    case OpCode::AveragePool: return "AveragePool";
    case OpCode::GlobalAveragePool: return "GlobalAveragePool";
    case OpCode::FullyConnected: return "FullyConnected";
    case OpCode::Flatten: return "Flatten";
    case OpCode::Relu: return "Relu";
  }
  return "unknown";
}

const char* to_string(WeightEncoding encoding) {
  switch (encoding) {
    case WeightEncoding::Float32: return "float32";
    case WeightEncoding::Int8PerChannel: return "int8";
    case WeightEncoding::Int4Clustered: return "int4";
    case WeightEncoding::TernaryClustered: return "ternary";
  }
  return "unknown";
}

const char* to_string(ClusterShape shape) { return shape == ClusterShape::Kernels ? "kernels" : "channels"; }

static int32_t window_extent(int32_t in, int32_t kernel, int32_t stride, int32_t pad_a, int32_t pad_b) {
  const int64_t padded = int64_t{in} + pad_a + pad_b;
  if (stride <= 0 || kernel <= 0 || padded < kernel) return 0;
  return static_cast<int32_t>((padded - kernel) / stride + 1);
}

int32_t Window::out_h(int32_t in_h) const { return window_extent(in_h, kernel_h, stride_h, pad_top, pad_bottom); }

int32_t Window::out_w(int32_t in_w) const { return window_extent(in_w, kernel_w, stride_w, pad_left, pad_right); }

Range range_of(ElementType type) {
  switch (type) {
    case ElementType::UInt8: return {0, 255};
    case ElementType::Int8: return {-128, 127};
    case ElementType::Int32: return {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
    case ElementType::Float32: break;
  }
  fail("float32 tensors have no integer range");
}

Range output_range(ElementType type, bool relu) {
  Range r = range_of(type);
  if (relu && r.lo < 0) r.lo = 0;
  return r;
}

}  // namespace trit
