#include "trit/session.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

#include "engine.h"
#include "float_executor.h"
#include "int8/table.h"
#include "int_executor.h"
#include "integer_graph.h"
#include "quantized_io.h"
#include "trit/error.h"
#include "trit/model_file.h"

namespace trit {

std::shared_ptr<const Model> Model::from_graph(std::shared_ptr<const Graph> graph, const Options& options) {
  if (!graph) fail("cannot make a model: no graph");
  auto model = std::shared_ptr<Model>(new Model());
  model->graph_ = std::move(graph);
  const Graph& g = *model->graph_;
  if (g.input().shape.size() != 3) fail("cannot make a model: its input is not an image [C, H, W]");
  model->memory_limit_ = options.memory_limit;
  // Prepared weights: one byte per weight on the integer paths, four on the float reference.
  const int64_t per_weight = is_integer_model(g) ? 1 : 4;
  int64_t weights = 0;
  for (const Node& n : g.nodes)
    if (has_weights(n)) weights += n.weights.count() * per_weight;  // checked at load: no overflow
  if (weights > options.memory_limit)
    fail("cannot make a model: its weights need {:.1f} MB prepared, above the memory limit of {:.1f} MB "
         "(Model::Options::memory_limit)", weights / 1e6, options.memory_limit / 1e6);
  if (!is_integer_model(g)) {
    // The fused path, unless the reference is asked for (isa "ref", or TRIT_ISA=ref).
    const k8::Isa isa = options.isa.empty() ? k8::select_isa() : k8::parse_isa(options.isa.c_str());
    model->float_ = std::make_unique<FloatExecutor>(
        model->graph_, isa == k8::Isa::Ref ? FloatPath::Reference : FloatPath::Fused, isa);
  } else if (options.dynamic_exponents || !Engine::unsupported_reason(g).empty()) {
    model->reference_ = std::make_unique<IntExecutor>(model->graph_, options.dynamic_exponents);
  } else {
    model->engine_ = std::make_unique<Engine>(model->graph_, options.isa, options.packed_weights);
  }
  return model;
}

std::shared_ptr<const Model> Model::load(const std::string& path, const Options& options) {
  return from_graph(std::make_shared<const Graph>(load_model(path)), options);
}

Model::~Model() = default;

int32_t Model::channels() const { return graph_->input().shape[0]; }
int32_t Model::height() const { return graph_->input().shape[1]; }
int32_t Model::width() const { return graph_->input().shape[2]; }
int32_t Model::classes() const { return static_cast<int32_t>(graph_->output().elements()); }
bool Model::is_integer() const { return is_integer_model(*graph_); }

std::string Model::engine_name() const {
  if (float_) return float_->path() == FloatPath::Fused ? "float32 fused" : "float32 reference";
  if (reference_) return "integer reference";
  return engine_->isa();
}

Session::Session(std::shared_ptr<const Model> model, int32_t max_batch) : model_(std::move(model)), max_batch_(max_batch) {
  if (!model_) fail("cannot make a session: no model");
  if (max_batch < 1) fail("cannot make a session for a batch of {} images", max_batch);
  // Activations: the planned arena, or (reference executors) every tensor as 32-bit values.
  // Per image first (grows linearly with the batch), so that no product overflows.
  const int64_t limit = model_->memory_limit_;
  int64_t need = 0;
  if (model_->engine_) {
    need = model_->engine_->plan(1).arena_bytes;
  } else {
    for (const Tensor& t : model_->graph().tensors) need += t.elements() * 4;  // < 2^33 each
  }
  if (need <= limit / max_batch && model_->engine_) need = model_->engine_->plan(max_batch).arena_bytes;
  else if (need <= limit / max_batch) need *= max_batch;
  else need = need > INT64_MAX / max_batch ? INT64_MAX : need * max_batch;
  if (model_->engine_ && need <= limit) need += model_->engine_->expansion_bytes();  // packed weights' buffer
  if (need > limit)
    fail("cannot make a session for {} images: its activations need {:.1f} MB, above the memory limit of {:.1f} MB "
         "(Model::Options::memory_limit)", max_batch, need / 1e6, limit / 1e6);
  if (model_->engine_) workspace_ = std::make_unique<Workspace>(*model_->engine_, max_batch);
  if (model_->float_) float_buffers_ = std::make_unique<FloatBuffers>();
}

Session::~Session() = default;

const MemoryPlan* Session::memory_plan() const { return workspace_ ? &workspace_->plan() : nullptr; }
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

std::vector<float> Session::logits(std::span<const Image> images) {
  if (images.empty() || static_cast<int64_t>(images.size()) > max_batch_)
    fail("cannot run {} images in a session for at most {}", images.size(), max_batch_);
  const Model& m = *model_;
  std::vector<Image> fitted;
  fitted.reserve(images.size());
  for (const Image& im : images) fitted.push_back(fit_to_input(im, m.graph().metadata, m.height(), m.width()));
  return logits_fitted(fitted);
}

std::vector<float> Session::logits_fitted(std::span<const Image> fitted) {
  if (fitted.empty() || static_cast<int64_t>(fitted.size()) > max_batch_)
    fail("cannot run {} images in a session for at most {}", fitted.size(), max_batch_);
  const Model& m = *model_;
  for (const Image& im : fitted)
    if (im.width != m.width() || im.height != m.height())
      fail("cannot run a {}x{} image: the model takes {}x{}", im.width, im.height, m.width(), m.height());
  if (m.engine_) return m.engine_->classify(*workspace_, fitted);
  if (m.reference_) return m.reference_->classify(fitted);
  const int64_t n = m.graph().input().elements();
  std::vector<float> x(fitted.size() * n);
  for (size_t i = 0; i < fitted.size(); ++i) normalize(fitted[i], m.graph().metadata, std::span(x).subspan(i * n, n));
  return m.float_->run(x, static_cast<int32_t>(fitted.size()), *float_buffers_);
}

std::vector<float> Session::logits_fitted(std::span<const uint8_t> rgb, int32_t images) {
  if (images < 1 || images > max_batch_) fail("cannot run {} images in a session for at most {}", images, max_batch_);
  const Model& m = *model_;
  const size_t per_image = static_cast<size_t>(m.width()) * m.height() * 3;
  if (rgb.size() != per_image * static_cast<size_t>(images))
    fail("cannot run {} bytes as {} fitted {}x{} images", rgb.size(), images, m.width(), m.height());
  if (m.float_) {
    const int64_t n = m.graph().input().elements();
    std::vector<float> x(static_cast<size_t>(images * n));
    for (int32_t i = 0; i < images; ++i)
      normalize(rgb.subspan(i * per_image, per_image), m.width(), m.height(), m.graph().metadata,
                std::span(x).subspan(static_cast<size_t>(i * n), static_cast<size_t>(n)));
    return m.float_->run(x, images, *float_buffers_);
  }
  const std::vector<int32_t> q = quantize_pixels(m.graph(), rgb, images);
  const std::vector<int32_t> out = m.engine_ ? m.engine_->run(*workspace_, q) : m.reference_->run(q, images);
  return dequantize(out, m.graph().output().exponent);
}

std::vector<float> Session::logits_from_tensor(std::span<const float> input) {
  const Model& m = *model_;
  const Tensor& in = m.graph().input();
  const int64_t n = in.elements();
  const auto batch = static_cast<int64_t>(input.size()) / n;
  if (batch < 1 || batch * n != static_cast<int64_t>(input.size()) || batch > max_batch_)
    fail("cannot run {} input values: not 1 to {} tensors of {} values", input.size(), max_batch_, n);
  if (m.float_) return m.float_->run(input, static_cast<int32_t>(batch), *float_buffers_);
  const std::vector<int32_t> q = quantize_tensor(m.graph(), input);
  const std::vector<int32_t> out = m.engine_ ? m.engine_->run(*workspace_, q) : m.reference_->run(q, static_cast<int32_t>(batch));
  return dequantize(out, m.graph().output().exponent);
}

void Session::run_into(std::span<const int32_t> input, std::span<int32_t> out) {
  const Model& m = *model_;
  if (m.float_) fail("cannot run integers through a float32 model");
  if (m.engine_) return m.engine_->run_into(*workspace_, input, out);
  const int64_t n = m.graph().input().elements();
  const auto batch = static_cast<int32_t>(static_cast<int64_t>(input.size()) / n);
  const auto result = m.reference_->run(input, batch);
  if (result.size() != out.size()) fail("cannot run model: room for {} outputs, the model gives {}", out.size(), result.size());
  std::copy(result.begin(), result.end(), out.begin());
}

std::vector<Prediction> Session::classify(const Image& image, int32_t k) { return top_k(*model_, logits(image), k); }

std::vector<Prediction> top_k(const Model& model, std::span<const float> logits, int32_t k) {
  if (k < 1) fail("cannot take the top {} classes", k);
  const float top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp(static_cast<double>(logits[i]) - top);
  const auto& labels = model.graph().metadata.labels;
  std::vector<Prediction> out;
  for (const int32_t c : top_classes(logits, k)) {
    Prediction pr;
    pr.index = c;
    pr.logit = logits[c];
    pr.probability = static_cast<float>(p[c] / sum);
    if (static_cast<size_t>(c) < labels.size()) {
      pr.wnid = labels[c].wnid;
      pr.label = labels[c].name;
    } else {
      pr.label = std::to_string(c);
    }
    out.push_back(std::move(pr));
  }
  return out;
}

std::vector<int32_t> top_classes(std::span<const float> logits, int32_t k) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const auto n = std::min<size_t>(static_cast<size_t>(std::max(k, 0)), order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  order.resize(n);
  return order;
}

}  // namespace trit
