#include "trit/graph.h"

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

int64_t Tensor::elements() const {
  int64_t n = 1;
  for (int32_t d : shape) n *= d;
  return n;
}

static int32_t window_extent(int32_t in, int32_t kernel, int32_t stride, int32_t pad_a,
                             int32_t pad_b) {
  const int64_t padded = int64_t{in} + pad_a + pad_b;
  if (stride <= 0 || kernel <= 0 || padded < kernel) return 0;
  return static_cast<int32_t>((padded - kernel) / stride + 1);
}

int32_t Window::out_h(int32_t in_h) const {
  return window_extent(in_h, kernel_h, stride_h, pad_top, pad_bottom);
}

int32_t Window::out_w(int32_t in_w) const {
  return window_extent(in_w, kernel_w, stride_w, pad_left, pad_right);
}

}  // namespace trit
