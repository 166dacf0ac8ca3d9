// FloatExecutor: runs a Graph whose weights are float32, on one of two paths:
//   - FloatPath::Reference: the float reference kernels (kernels/float_ref.h), the float
//     specification of a model: the same bits on every CPU and instruction set. The converter
//     calibrates with it (one node at a time, through run_float_node: internal, not installed).
//   - FloatPath::Gemm: convolutions and fully connected layers as im2col and OpenBLAS sgemm
//     (float_gemm.h), about ten times faster; within rounding of the reference (sums in another
//     order), not its bits. What a float32 trit::Session runs.
//
// Load, prepare, run: the constructor prepares (checks the encodings, reorders Conv weights
// into the layout the reference kernel reads); run() only computes.
//
// Thread safety: run() is const and allocates its own tensors, so one executor may serve many
// threads at once. Work inside run() is split over oneTBB tasks in the caller's task_arena (wrap
// the call in a tbb::task_arena to cap the threads); results do not depend on the thread count.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "trit/graph.h"

namespace trit {

// Runs one node on `batch` images: inputs[k] points at the node's k-th input for the batch, out
// at its output. `packed` holds a Conv's weights as ref::pack_conv_weights orders them (ignored
// for other ops; a fully connected layer reads the node's weights as they are).
void run_float_node(const Graph& graph, const Node& node, const float* packed, int32_t batch,
                    const std::vector<const float*>& inputs, float* out);

enum class FloatPath { Reference, Gemm };

class FloatExecutor {
 public:
  // Throws trit::Error when a layer's weights are not float32, naming the layer.
  explicit FloatExecutor(std::shared_ptr<const Graph> graph, FloatPath path = FloatPath::Reference);

  // input: batch images of graph().input().elements() floats each, [N][C][H][W].
  // Returns the first graph output, [N][graph().output().elements()].
  std::vector<float> run(std::span<const float> input, int32_t batch) const;

  const Graph& graph() const { return *graph_; }
  FloatPath path() const { return path_; }

 private:
  std::shared_ptr<const Graph> graph_;
  FloatPath path_;
  std::vector<size_t> last_use_;  // per tensor: index of the last node that reads it
  std::vector<std::vector<float>> packed_;  // per node: Conv weights as the reference reads them (Reference only)
};

}  // namespace trit
