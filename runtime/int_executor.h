// IntExecutor: runs an integer model (8-bit dynamic fixed point activations; int8, int4 or
// ternary weights) through the integer reference kernels (kernels/int_ref.h). It is the
// specification of the integer pipeline: the fast Engine (engine.h) equals it bit for bit.
//
// No floating point runs between the input quantizer and the final logits (quantized_io.h): every
// layer is integer arithmetic with one rounding (kernels/requant.h).
//
// Load, prepare, run: the constructor checks that the graph is an integer graph
// (integer_graph.h) and prepares every layer (int_node.h); run() computes. Thread safety: run()
// is const; many threads may share one executor. Work is split over oneTBB tasks in the caller's
// task_arena; results are the same for any thread count.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "int_node.h"
#include "trit/graph.h"
#include "trit/image.h"

namespace trit {

class IntExecutor {
 public:
  // dynamic_exponents: instead of the calibrated exponents stored in the model, each 8-bit
  // tensor written by a Conv, fully connected, Add or average pool takes, per image, the largest
  // exponent that holds all its values (the paper's dynamic fixed point). Biases, stored at the
  // calibrated input exponent, are shifted to the actual one. Still integers only; the int32
  // logits keep their stored exponent. (dynamic_exponents.cpp)
  explicit IntExecutor(std::shared_ptr<const Graph> graph, bool dynamic_exponents = false);

  // Runs quantized inputs; returns the first graph output, integers of its exponent.
  std::vector<int32_t> run(std::span<const int32_t> input, int32_t batch) const;
  // Fitted images in, dequantized logits out ([N][classes]).
  std::vector<float> classify(std::span<const Image> images) const;

  const Graph& graph() const { return *graph_; }

 private:
  std::vector<int32_t> run_dynamic(std::span<const int32_t> image) const;

  std::shared_ptr<const Graph> graph_;
  bool dynamic_ = false;
  std::vector<PreparedLayer> layers_;  // per node (empty for other ops)
  std::vector<size_t> last_use_;       // per tensor: the last node that reads it
};

}  // namespace trit
