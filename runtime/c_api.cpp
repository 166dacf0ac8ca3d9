// The C API (trit.h) over the C++ one (trit/session.h): exceptions become status codes and a
// thread-local message.
#include "trit.h"

#include <cstring>
#include <new>
#include <string>

#include "trit/error.h"
#include "trit/session.h"

struct trit_model {
  std::shared_ptr<const trit::Model> model;
};
struct trit_session {
  trit::Session session;
};

namespace {

thread_local std::string last_error;

trit_status invalid(const char* what) {
  last_error = std::string("invalid argument: ") + what;
  return TRIT_INVALID_ARGUMENT;
}

template <typename F>
trit_status guarded(F&& f) {
  try {
    last_error.clear();
    f();
    return TRIT_OK;
  } catch (const std::bad_alloc&) {
    last_error = "out of memory";
    return TRIT_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    last_error = e.what();
    return TRIT_ERROR;
  } catch (...) {
    last_error = "unknown error";
    return TRIT_ERROR;
  }
}

}  // namespace

extern "C" {

const char* trit_last_error(void) { return last_error.c_str(); }

trit_status trit_model_load(const char* path, trit_model** out) {
  if (out == nullptr) return invalid("out is NULL");
  *out = nullptr;
  if (path == nullptr) return invalid("path is NULL");
  return guarded([&] { *out = new trit_model{trit::Model::load(path)}; });
}

trit_status trit_model_load_flags(const char* path, uint32_t flags, trit_model** out) {
  if (out == nullptr) return invalid("out is NULL");
  *out = nullptr;
  if (path == nullptr) return invalid("path is NULL");
  if (flags & ~uint32_t{TRIT_LOAD_PACKED_WEIGHTS}) return invalid("unknown flags");
  trit::Model::Options options;
  options.packed_weights = (flags & TRIT_LOAD_PACKED_WEIGHTS) != 0;
  return guarded([&] { *out = new trit_model{trit::Model::load(path, options)}; });
}

void trit_model_free(trit_model* model) { delete model; }

int32_t trit_model_input(const trit_model* model, int32_t* channels, int32_t* height, int32_t* width) {
  if (model == nullptr) return -1;
  if (channels) *channels = model->model->channels();
  if (height) *height = model->model->height();
  if (width) *width = model->model->width();
  return 0;
}

int32_t trit_model_classes(const trit_model* model) { return model ? model->model->classes() : -1; }

const char* trit_model_label(const trit_model* model, int32_t index) {
  if (model == nullptr || index < 0 || index >= model->model->classes()) return nullptr;
  const auto& labels = model->model->graph().metadata.labels;
  return static_cast<size_t>(index) < labels.size() ? labels[index].name.c_str() : "";
}

trit_status trit_session_create(const trit_model* model, trit_session** out) {
  if (out == nullptr) return invalid("out is NULL");
  *out = nullptr;
  if (model == nullptr) return invalid("model is NULL");
  return guarded([&] { *out = new trit_session{trit::Session(model->model)}; });
}

void trit_session_free(trit_session* session) { delete session; }

trit_status trit_logits_rgb(trit_session* session, const uint8_t* rgb, int32_t width, int32_t height, float* logits,
                            size_t capacity) {
  if (session == nullptr) return invalid("session is NULL");
  if (rgb == nullptr || logits == nullptr) return invalid("rgb or logits is NULL");
  if (width < 1 || height < 1 || int64_t{width} * height > trit::kDefaultMaxPixels)
    return invalid("the image size is not within 1 to 2^27 pixels");
  const int32_t classes = session->session.model().classes();
  if (capacity < static_cast<size_t>(classes)) return invalid("logits has room for fewer values than classes");
  return guarded([&] {
    trit::Image image;
    image.width = width;
    image.height = height;
    image.pixels.assign(rgb, rgb + static_cast<size_t>(width) * height * 3);
    const auto out = session->session.logits(image);
    std::memcpy(logits, out.data(), out.size() * sizeof(float));
  });
}

trit_status trit_classify_file(trit_session* session, const char* path, int32_t k, int32_t* classes,
                               float* probabilities) {
  if (session == nullptr) return invalid("session is NULL");
  if (path == nullptr || classes == nullptr) return invalid("path or classes is NULL");
  if (k < 1) return invalid("k must be at least 1");
  return guarded([&] {
    const auto top = session->session.classify(trit::decode_image(path), k);
    for (int32_t i = 0; i < k; ++i) {
      const bool have = static_cast<size_t>(i) < top.size();
      classes[i] = have ? top[i].index : -1;
      if (probabilities) probabilities[i] = have ? top[i].probability : 0.0f;
    }
  });
}

}  // extern "C"
