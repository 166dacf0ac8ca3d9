// FloatExecutor: runs a Graph whose weights are float32, on one of two paths:
//   - FloatPath::Reference: the float reference kernels (kernels/float_ref.h), the float
//     specification of a model: the same bits on every CPU and instruction set.
//   - FloatPath::Fused: activations [N][H][W][C], convolutions and fully connected layers as
//     fused multiply-adds on weights packed at prepare (kernels/float_nhwc.h: FmaConv), on the
//     chosen kernel path; within rounding of the reference (one rounding per multiply-add
//     instead of two), not its bits, but the same bits on every path, thread count and batch.
//     What a float32 trit::Session runs, and (node by node, through FloatNodes) what the
//     converter calibrates with.
//
// Load, prepare, run: the constructor prepares (checks the encodings, reorders the weights into
// the layout its path's kernels read); run() only computes.
//
// Thread safety: run() is const and takes its tensors from the caller's FloatBuffers (or its own),
// so one executor may serve many threads at once, each with its own buffers. Work inside run() is
// split over oneTBB tasks in the caller's task_arena (wrap the call in a tbb::task_arena to cap
// the threads); results do not depend on the thread count.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "int8/table.h"
#include "trit/graph.h"

namespace trit {

// Runs one node on `batch` images: inputs[k] points at the node's k-th input for the batch, out
// at its output. `packed` holds a Conv's weights as ref::pack_conv_weights orders them (ignored
// for other ops; a fully connected layer reads the node's weights as they are).
void run_float_node(const Graph& graph, const Node& node, const float* packed, int32_t batch,
                    const std::vector<const float*>& inputs, float* out);

// A layer (Conv or FullyConnected, float32 weights) of the fused path, prepared for one kernel
// path: its weights packed (kernels/float_nhwc.h, pack_fma_weights), its bias padded, and the
// offsets of its kernel rows in the (padded) input it reads.
struct FusedLayer {
  std::vector<float> weights, bias;
  std::vector<int64_t> taps;
};
FusedLayer prepare_fused_layer(const Graph& g, const Node& n, const k8::KernelTable& table);
// Runs it on `batch` images [N][H][W][C]: out = act(layer(in) + residual) (residual null: none;
// the node's own activation is not applied, act is). scratch: the padded input, grown as needed.
// Split over oneTBB's threads; the same bits on every path, thread count and batch.
void run_fused_layer(const Graph& g, const Node& n, const FusedLayer& layer, const k8::KernelTable& table, int32_t batch,
                     const float* in, const float* residual, Activation act, float* out, std::vector<float>& scratch);

// Any node of the fused path on tensors [N][H][W][C]: a layer as run_fused_layer, with `act`
// (other nodes ignore residual and act: they apply their own activation); pools with the
// reference's bits (float_nhwc.h); Flatten writes the reference's order, channels first; Add and
// Relu elementwise, by run_float_node.
void run_fused_node(const Graph& g, const Node& n, const FusedLayer& layer, const k8::KernelTable& table, int32_t batch,
                    const std::vector<const float*>& ins, const float* residual, Activation act, float* out,
                    std::vector<float>& scratch);

// Node-by-node float runs on tensors [N][H][W][C], as the converter's passes keep them: the
// fused path's nodes (run_fused_node), with no Add fused. The same bits on every kernel path,
// thread count and batch, so that a conversion's bytes do not depend on the machine.
class FloatNodes {
 public:
  // Prepares the layers among nodes [begin, end) for the best kernel path (or TRIT_ISA's).
  FloatNodes(const Graph& g, size_t begin, size_t end);
  // Node ni of them on `batch` images, inputs [N][H][W][C] as run_fused_node takes them; a
  // layer's activation is `act` instead of its own. scratch: the padded input, grown as needed.
  void run(size_t ni, int32_t batch, const std::vector<const float*>& inputs, Activation act, float* out,
           std::vector<float>& scratch) const;

 private:
  const Graph& g_;
  const k8::KernelTable& table_;
  std::vector<FusedLayer> layers_;  // per node
};

enum class FloatPath { Reference, Fused };

// The buffers that runs take their tensors from, kept between runs: a run of a batch no larger
// than before allocates no tensor (and touches no page the kernel must first clear), only a few
// pointers a tensor. The smallest free buffer that fits, else a new one. One run at a time.
class FloatBuffers {
 public:
  float* take(size_t floats);
  void give(const float* p);
  std::vector<float> padded;  // the fused path's padded inputs

 private:
  struct Buffer {
    std::unique_ptr<float[]> data;
    size_t size = 0;
    bool used = false;
  };
  std::vector<Buffer> buffers_;
};

class FloatExecutor {
 public:
  // Throws trit::Error when a layer's weights are not float32, naming the layer.
  // isa: the kernel path of the fused path. (The reference's convolution runs on the best path
  // this CPU has, or TRIT_ISA's, through run_float_node: the reference's bits on every path.)
  explicit FloatExecutor(std::shared_ptr<const Graph> graph, FloatPath path = FloatPath::Reference,
                         k8::Isa isa = k8::select_isa());

  // input: batch images of graph().input().elements() floats each, [N][C][H][W].
  // Returns the first graph output, [N][graph().output().elements()].
  std::vector<float> run(std::span<const float> input, int32_t batch) const;
  // The same, with the tensors in `buffers` (kept by the caller between runs).
  std::vector<float> run(std::span<const float> input, int32_t batch, FloatBuffers& buffers) const;

  const Graph& graph() const { return *graph_; }
  FloatPath path() const { return path_; }

 private:
  std::shared_ptr<const Graph> graph_;
  FloatPath path_;
  std::vector<size_t> last_use_;  // per tensor: index of the last node that reads it
  const k8::KernelTable* table_;
  // Per node: a Conv's weights as the reference reads them (Reference); or (Fused) a layer's
  // packed weights, padded bias and taps' offsets in the input it reads (kernels/float_nhwc.h,
  // FmaConv), and the Adds fused into convolutions (fuse_adds()).
  struct Prepared {
    FusedLayer layer;  // Reference: layer.weights alone
    int32_t residual = -1, writes = -1;  // a convolution with a fused Add: its other operand, its output
    Activation act = Activation::None;   // and its activation
    bool fused_away = false;             // an Add that a convolution computes
  };
  std::vector<Prepared> prepared_;

  void fuse_adds();
};

}  // namespace trit
