// The in-memory model: what trit-convert builds, what a .trit file holds, what the runtime runs.
//
// Ownership: a Graph owns everything it points to. Weight bytes live in Blobs, which share
// ownership of their storage (a std::vector the converter filled, or the memory-mapped file the
// loader opened), so a Graph loaded from a file keeps the mapping alive as long as it lives.
//
// Conventions (they match schema/trit.fbs, which documents the file):
//   - tensor shapes are one image's: [C, H, W] for feature maps, [C] after Flatten or a fully
//     connected layer; the batch size is chosen at run time; memory order is C, H, W.
//   - weights are [O, I, KH, KW]; a fully connected layer has KH = KW = 1 and I = K.
//   - pads are explicit and may be asymmetric: top, left, bottom, right.
//   - nodes are in execution order, and each tensor is written by exactly one node (or is a
//     graph input). load_model() checks all of this; code that runs a Graph may assume it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

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

// Bytes with shared ownership of their storage. Empty when data == nullptr.
struct Blob {
  std::shared_ptr<const void> owner;  // keeps [data, data + size) alive
  const std::byte* data = nullptr;
  size_t size = 0;

  bool empty() const { return size == 0; }
  // A view as T. The caller has checked size % sizeof(T) == 0; data is 64-byte aligned when it
  // comes from a file, and vector-aligned when it comes from from_vector.
  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(data), size / sizeof(T)};
  }
  // Takes a vector and owns it.
  template <typename T>
  static Blob from_vector(std::vector<T> values) {
    auto storage = std::make_shared<std::vector<T>>(std::move(values));
    Blob blob;
    blob.data = reinterpret_cast<const std::byte*>(storage->data());
    blob.size = storage->size() * sizeof(T);
    blob.owner = std::move(storage);
    return blob;
  }
};

struct Tensor {
  std::string name;
  std::vector<int32_t> shape;  // one image's; every dimension >= 1
  ElementType type = ElementType::Float32;
  int32_t exponent = 0;        // integer tensors: value = m * 2^-exponent

  // Number of elements of one image. load_model() guarantees it fits in int64 and below 2^31.
  int64_t elements() const;
};

// Kernel window of a convolution or pool.
struct Window {
  int32_t kernel_h = 1, kernel_w = 1;
  int32_t stride_h = 1, stride_w = 1;
  int32_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;

  // Output extent for an input extent, or 0 when the window does not fit.
  int32_t out_h(int32_t in_h) const;
  int32_t out_w(int32_t in_w) const;
};

struct Weights {
  WeightEncoding encoding = WeightEncoding::Float32;
  std::array<int32_t, 4> shape{};  // O, I, KH, KW
  Blob codes;
  int32_t cluster_size = 0;
  ClusterShape cluster_shape = ClusterShape::Kernels;
  Blob scales;           // uint8 per cluster (integer encodings)
  Blob scale_exponents;  // int8 per output channel (integer encodings)

  int64_t count() const {
    return int64_t{shape[0]} * shape[1] * shape[2] * shape[3];
  }
};

struct Node {
  std::string name;
  OpCode op = OpCode::Conv;
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
  Window window;                       // Conv, MaxPool, AveragePool
  Activation activation = Activation::None;  // Conv, Add, FullyConnected
  bool count_include_pad = false;      // AveragePool
  Weights weights;                     // Conv, FullyConnected
  Blob bias;                           // Conv, FullyConnected: float32 [O] (or int32 [O])
};

struct Label {
  std::string wnid;  // WordNet id, may be empty
  std::string name;
};

struct Metadata {
  ChannelOrder channel_order = ChannelOrder::RGB;
  std::vector<float> mean;   // per input channel, model order, pixel units
  std::vector<float> scale;  // per input channel divisor, > 0
  int32_t resize_shorter = 0;  // 0: resize straight to the input size
  std::vector<Label> labels;   // empty, or one per output class
  std::string source;
  std::string converter_version;
  std::string converter_options;
};

struct Graph {
  std::vector<Tensor> tensors;
  std::vector<Node> nodes;
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
  Metadata metadata;
  Blob file;  // the whole memory-mapped file a loaded graph's blobs point into; empty otherwise

  const Tensor& input() const { return tensors[inputs.at(0)]; }
  const Tensor& output() const { return tensors[outputs.at(0)]; }
};

}  // namespace trit
