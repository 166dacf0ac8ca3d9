// IntExecutor: runs an integer model (8-bit dynamic fixed point activations; int8, int4 or
// ternary weights) through the integer reference kernels (kernels/int_ref.h).
//
// No floating point runs between the input quantizer and the final logits: the input quantizer
// maps each u8 pixel through a table built at prepare time, (pixel - mean) / scale rounded to the
// input tensor's exponent; every layer is integer arithmetic with one rounding (requant.h); only
// the int32 logits are turned into floats, for the caller.
//
// Load, prepare, run: the constructor checks that the graph is an integer graph and prepares
// every layer (unpacked and expanded weights, per-channel requantization); run() computes.
// Thread safety: run() is const; many threads may share one executor. Work is split over oneTBB
// tasks in the caller's task_arena; results are the same for any thread count.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "trit/graph.h"
#include "trit/image.h"

namespace trit {

// Value range of an integer tensor type.
struct Range {
  int32_t lo, hi;
};
Range range_of(ElementType type);
// Whether a graph holds an integer model (its input is quantized).
bool is_integer_model(const Graph& graph);
// Throws trit::Error unless every tensor is an integer one and every node that is not a layer
// keeps its exponents within what the integer kernels rescale (layers: prepare_layer).
void check_integer_graph(const Graph& graph);

// One Conv or fully connected layer, prepared: weights expanded to W = code * cluster scale in
// the layout the kernel reads, and per-channel requantization parameters. A layer left in float
// (trit-convert --layer NAME=float) holds its float weights in the float reference's layout
// instead: its integer input is turned into floats (exactly, m * 2^-f), run through the float
// reference, and its output rounded to the output's exponent: the one place floats run, asked for.
struct PreparedLayer {
  bool is_float = false;
  std::vector<float> float_packed;
  std::vector<int16_t> packed;
  std::vector<int32_t> multiplier, shift;
  std::vector<int64_t> bias;
  int32_t lo = 0, hi = 255;
};
// Throws trit::Error naming the layer when its encoding, codes, exponents or shifts are unusable.
PreparedLayer prepare_layer(const Graph& graph, const Node& node);
// The same without the expanded weights (packed stays empty; float layers are complete).
PreparedLayer prepare_requant(const Graph& graph, const Node& node);

// Runs one node on `batch` images: inputs[k] points at the node's k-th input for the batch,
// out at its output. `layer` is the node's PreparedLayer (Conv and fully connected only).
void run_int_node(const Graph& graph, const Node& node, const PreparedLayer* layer, int32_t batch,
                  const std::vector<const int32_t*>& inputs, int32_t* out);

// The input quantizer: fitted images (the input's size) to the input tensor's integers,
// [N][C][H][W]: floor((pixel - mean) / scale * 2^f + 0.5), saturated, through a table per channel.
std::vector<int32_t> quantize_images(const Graph& graph, std::span<const Image> images);

class IntExecutor {
 public:
  // dynamic_exponents: instead of the calibrated exponents stored in the model, each 8-bit
  // tensor written by a Conv, fully connected, Add or average pool takes, per image, the largest
  // exponent that holds all its values (the paper's dynamic fixed point). Biases, stored at the
  // calibrated input exponent, are shifted to the actual one. Still integers only; the int32
  // logits keep their stored exponent.
  explicit IntExecutor(std::shared_ptr<const Graph> graph, bool dynamic_exponents = false);

  // Quantizes fitted images (the input's size) into the input tensor, [N][C][H][W].
  std::vector<int32_t> quantize_input(std::span<const Image> images) const;

  using Observer = std::function<void(size_t node, std::span<const int32_t> output)>;
  // Runs quantized inputs; returns the first graph output, integers of its exponent.
  std::vector<int32_t> run(std::span<const int32_t> input, int32_t batch, const Observer& observer = {}) const;
  // Images in, dequantized logits out ([N][classes]).
  std::vector<float> classify(std::span<const Image> images) const;

  const Graph& graph() const { return *graph_; }

 private:
  std::shared_ptr<const Graph> graph_;
  std::vector<int32_t> run_dynamic(std::span<const int32_t> image) const;

  bool dynamic_ = false;
  std::vector<PreparedLayer> layers_;           // per node (empty for other ops)
  std::vector<size_t> last_use_;
};

}  // namespace trit
