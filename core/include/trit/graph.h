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

#include "trit/types.h"
#include "trit/weight_codes.h"

namespace trit {

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

// A layer's weights: the layout (trit/weight_codes.h) and the bytes of the file's layout.
struct Weights : WeightLayout {
  Blob codes;            // float32, or the packed integer codes
  Blob scales;           // uint8 per cluster (integer encodings)
  Blob scale_exponents;  // int8 per output channel (integer encodings)
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

// A tensor's shape as one image's [C, H, W] ([C] is [C, 1, 1]).
Shape3 shape3(const Tensor& tensor);
// Whether the node is a layer with weights: Conv or FullyConnected.
bool has_weights(const Node& node);
// The range the node writes into its (integer) output tensor: the type's, floored at 0 after a
// fused ReLU or a Relu op.
Range output_range(const Node& node, const Tensor& output);

}  // namespace trit
