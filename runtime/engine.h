// Engine: an integer model prepared for the fast kernels (kernels/int8/), and the Workspace a
// thread runs it in.
//
// It computes exactly what IntExecutor (the integer reference) computes, for every kernel path:
// the same int32 outputs, bit for bit. What differs is speed: 8-bit NHWC activations, weights
// expanded once to int8 and repacked for the chosen instruction set (or, packed, kept as codes
// and scales and expanded a layer at a time per run), one arena planned per batch size, and
// tiles of rows x output channels spread over oneTBB. A residual add runs inside the epilogue of
// the convolution that feeds it (layer.h, ConvLayer::residual), so its operand is never stored.
//
// Load, prepare, run:
//   - the constructor validates the graph for these kernels and packs every layer (all the
//     expensive work, once);
//   - a Workspace owns the memory of runs: the arena planned for its batch size and per-thread
//     scratch. It is created once and reused; run() then allocates nothing but its result.
//   - run() is const: one Engine may serve many threads at once, each with its own Workspace.
// Work is split over oneTBB tasks in the caller's task_arena; results are identical for any
// thread count. With more than one thread, independent branches (a ResNet block's projection
// shortcut beside its main path) run at the same time in a task_group (schedule.h); the memory
// plan keeps apart every two tensors whose steps do not depend on each other (memory_planner.h).
// Each layer is prepared by kernels/int8/prepare.h, the contract's own file.
//
// Not supported here (the constructor says so, and the caller runs IntExecutor instead): layers
// kept in float32 (trit-convert --layer NAME=float), dynamic exponents, int32 tensors read by
// another node.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "trit/graph.h"
#include "trit/image.h"
#include "trit/memory_plan.h"

namespace trit {

namespace detail {
struct EngineSteps;
struct WorkspaceState;
}  // namespace detail

class Workspace;

class Engine {
 public:
  // isa: "ref", "avx2", "avx512vnni", "amx", or empty for the best this CPU runs (or TRIT_ISA when
  // set). packed: ternary and int4 layers keep their weights packed (2- or 4-bit codes and
  // cluster scales, k8::CompactWeights) and each run expands one layer at a time into its
  // workspace, bit for bit the expanded layout (so every result is the same). Throws
  // trit::Error when the graph or the path is unsupported.
  explicit Engine(std::shared_ptr<const Graph> graph, std::string_view isa = {}, bool packed = false);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Why this graph cannot run here, or an empty string.
  static std::string unsupported_reason(const Graph& graph);

  // Quantized inputs [N][C][H][W] (quantize_images) of 1 to workspace.batch() images in; the
  // first graph output out, as IntExecutor::run returns it ([N][C][H][W] integers of the
  // output's exponent). step_seconds, when given, receives each node's wall time (one per node;
  // an add fused into the convolution that feeds it reads 0, its time is the convolution's).
  std::vector<int32_t> run(Workspace& workspace, std::span<const int32_t> input,
                           std::vector<double>* step_seconds = nullptr) const;
  // The same into the caller's memory (out.size() == N * the first output's elements): with a
  // warm workspace (one run done on each thread) this allocates nothing.
  void run_into(Workspace& workspace, std::span<const int32_t> input, std::span<int32_t> out,
                std::vector<double>* step_seconds = nullptr) const;
  // Fitted images (the input's size) in, dequantized logits out ([N][classes]), as
  // IntExecutor::classify.
  std::vector<float> classify(Workspace& workspace, std::span<const Image> images) const;

  const Graph& graph() const { return *graph_; }
  const char* isa() const;
  // Multiply-accumulates of one image, per node (0 for nodes that are not layers).
  std::vector<int64_t> macs() const;
  // Bytes of weights this engine holds (the packed layouts, or packed codes and scales).
  int64_t weight_bytes() const;
  // Bytes each Workspace holds to expand packed weights into (0 unless packed): the largest
  // layer's expanded layout, and the largest of a branch that may run beside the main path.
  int64_t expansion_bytes() const;
  MemoryPlan plan(int32_t batch) const;

 private:
  friend class Workspace;
  void run_step(size_t step, detail::WorkspaceState& workspace) const;
  std::shared_ptr<const Graph> graph_;
  std::unique_ptr<detail::EngineSteps> steps_;
};

// The memory one thread runs an Engine in, for one batch size. Not thread-safe: one per
// thread. Holds no reference to the Engine beyond the plan's sizes; it must be used with the
// Engine it was made for, which must outlive it.
class Workspace {
 public:
  Workspace(const Engine& engine, int32_t batch);
  ~Workspace();
  Workspace(Workspace&&) noexcept;
  Workspace& operator=(Workspace&&) noexcept;

  int32_t batch() const;
  const MemoryPlan& plan() const;

 private:
  friend class Engine;
  std::unique_ptr<detail::WorkspaceState> state_;
};

}  // namespace trit
