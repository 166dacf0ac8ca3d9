// The embedding API: a Model loaded once, and a Session per thread that runs it.
//
//   auto model = trit::Model::load("resnet50-ternary.trit");   // throws trit::Error
//   trit::Session session(model);                               // one per thread
//   for (const auto& p : session.classify(trit::decode_image("cat.jpg"), 5))
//     std::printf("%s %.3f\n", p.label.c_str(), p.probability);
//
// Ownership and lifetimes:
//   - Model is immutable after load() and held by std::shared_ptr. It owns the graph (and the
//     memory-mapped file the weights are read from) and the prepared kernels. Any number of
//     threads and sessions may share one Model; a Session keeps its Model alive, so a Model
//     outlives every Session made from it no matter which handle goes first.
//   - Session owns the memory runs need: the planned arena (sized for max_batch images) and
//     per-thread scratch. It is not thread-safe: one Session per thread (or a lock around it).
//     A run allocates nothing but what it returns (logits()/classify() return vectors;
//     run_into() writes into the caller's memory and allocates nothing once warm); float32
//     models take their tensors from buffers the Session keeps, and allocate the normalized
//     input and a few pointers a run.
//   - Everything that depends on input (files, images, sizes) fails with trit::Error and a
//     one-line message; nothing aborts.
//
// Which engine runs: float32 models run the fused float path (activations [N][H][W][C], fused
// multiply-adds on weights packed at load, the residual adds in the convolutions; within rounding
// of the float reference and the same bits on every path, thread count and batch), or the float
// reference itself with isa "ref" (or TRIT_ISA=ref), the same bits as the converter's. Integer models run the fast
// integer kernels (kernels/int8/: AVX-512 VNNI, AVX2 or portable, chosen at run time, or
// TRIT_ISA), except those the kernels do not take (a layer kept in float32, or
// Options::dynamic_exponents), which run the integer reference executor. All integer paths give
// the same bits.
//
// Threads: work inside a run is split over oneTBB tasks in the calling thread's task_arena;
// wrap calls in tbb::task_arena(n).execute(...) to cap the threads. Results are identical for
// any thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "trit/graph.h"
#include "trit/image.h"
#include "trit/memory_plan.h"

namespace trit {

class Engine;
class Workspace;
class FloatExecutor;
class FloatBuffers;
class IntExecutor;

struct Prediction {
  int32_t index = 0;         // class index
  float probability = 0;     // softmax of the logits
  float logit = 0;
  std::string wnid, label;   // from the model's labels (empty / the index when it has none)
};

class Model {
 public:
  struct Options {
    bool dynamic_exponents = false;  // integer models: each activation's exponent per image
    // Integer models on the fast kernels: ternary and int4 layers keep their weights packed (2-
    // or 4-bit codes and cluster scales, about a quarter of the expanded bytes), and a session
    // expands one layer at a time just before running it (a buffer the size of the largest
    // layer). The same results, bit for bit; runs take a little longer.
    bool packed_weights = false;
    std::string isa;                 // "", "ref", "avx2", "avx512vnni" or "amx" (empty: the best, or TRIT_ISA);
                                     // float32 models: "ref" runs the float reference, others the fused path
    // The most memory the model may make trit allocate, checked before allocating: the prepared
    // weights when the model is made, and a session's activations (its planned arena, or what
    // a reference executor's run holds) when a session is made. A valid but huge model gets a
    // trit::Error naming the size instead of exhausting the machine.
    int64_t memory_limit = kDefaultMemoryLimit;
  };
  static constexpr int64_t kDefaultMemoryLimit = int64_t{8} << 30;  // 8 GiB
  static std::shared_ptr<const Model> load(const std::string& path, const Options& options);
  static std::shared_ptr<const Model> load(const std::string& path) { return load(path, Options{}); }
  // A graph already in memory (e.g. from the converter).
  static std::shared_ptr<const Model> from_graph(std::shared_ptr<const Graph> graph, const Options& options);

  ~Model();
  const Graph& graph() const { return *graph_; }
  // Input [C, H, W]; number of classes (elements of the first output).
  int32_t channels() const;
  int32_t height() const;
  int32_t width() const;
  int32_t classes() const;
  bool is_integer() const;
  // "float32 fused", "float32 reference", "integer reference", or the fast kernels' path
  // ("avx512vnni", ...).
  std::string engine_name() const;

 private:
  friend class Session;
  Model() = default;
  std::shared_ptr<const Graph> graph_;
  int64_t memory_limit_ = 0;
  std::unique_ptr<FloatExecutor> float_;
  std::unique_ptr<IntExecutor> reference_;
  std::unique_ptr<Engine> engine_;
};

class Session {
 public:
  // max_batch: the most images one call takes (the arena is planned for it).
  explicit Session(std::shared_ptr<const Model> model, int32_t max_batch = 1);
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  const Model& model() const { return *model_; }
  int32_t max_batch() const { return max_batch_; }
  // The arena's plan (size, lower bound, offsets) on the fast kernels; nullptr elsewhere (the
  // reference executors allocate per run).
  const MemoryPlan* memory_plan() const;

  // Decoded images of any size: resized and cropped as the model's metadata says, then run.
  // Returns [N][classes] logits (dequantized for integer models).
  std::vector<float> logits(std::span<const Image> images);
  std::vector<float> logits(const Image& image) { return logits(std::span(&image, 1)); }
  // Images already the input's size (fit_to_input), e.g. prepared on other threads.
  std::vector<float> logits_fitted(std::span<const Image> fitted);
  // The same on N fitted images packed one after another: N x height x width x 3 bytes of RGB
  // (a numpy batch, read where it lies).
  std::vector<float> logits_fitted(std::span<const uint8_t> rgb, int32_t images);
  // A tensor: N images of normalized floats [C][H][W] (what normalize() writes). Integer models
  // quantize it to their input's exponent (round half up, saturated) first.
  std::vector<float> logits_from_tensor(std::span<const float> input);
  // The top k classes of one image, most probable first (ties: lower index first).
  std::vector<Prediction> classify(const Image& image, int32_t k = 5);

  // Integer models, the allocation-free form: quantized inputs [N][C][H][W] (quantize_images)
  // in, the first output's integers (of its exponent) written to `out`, which must hold
  // N * classes values. Throws trit::Error for a float model or wrong sizes.
  void run_into(std::span<const int32_t> input, std::span<int32_t> out);

 private:
  std::shared_ptr<const Model> model_;
  int32_t max_batch_ = 1;
  std::unique_ptr<Workspace> workspace_;         // fast kernels only
  std::unique_ptr<FloatBuffers> float_buffers_;  // float32 models: tensors kept between runs
};

// The top k entries of logits (one image), with labels.
std::vector<Prediction> top_k(const Model& model, std::span<const float> logits, int32_t k);
// The indices of the k largest logits (at most logits.size()), largest first; ties go to the
// lower index. What top_k and the tools rank by.
std::vector<int32_t> top_classes(std::span<const float> logits, int32_t k);

}  // namespace trit
