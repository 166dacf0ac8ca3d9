// trit.Model and trit.Session over trit::Model and trit::Session.
//
// A Python Model holds the shared trit::Model until close(); a Session holds its own reference
// (as in C++, a model outlives its sessions whichever handle goes first) and a trit::Session,
// which is not thread-safe: a mutex serializes the calls of several Python threads on one
// session (taken after the GIL is released, so a waiting thread never holds it). Sessions on
// one model run in parallel.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bindings.h"
#include "trit/error.h"
#include "trit/session.h"

namespace trit::py {
namespace {

class PyModel {
 public:
  PyModel(std::shared_ptr<const Model> model, std::string path) : model_(std::move(model)), path_(std::move(path)) {}
  const std::shared_ptr<const Model>& get() const {
    if (!model_) fail("cannot use model '{}': it is closed", path_);
    return model_;
  }
  const std::string& path() const { return path_; }
  bool closed() const { return !model_; }
  void close() { model_.reset(); }

 private:
  std::shared_ptr<const Model> model_;
  std::string path_;
};

class PySession {
 public:
  PySession(std::shared_ptr<const Model> model, std::string path, int32_t max_batch)
      : model_(model), session_(std::make_unique<Session>(std::move(model), max_batch)), path_(std::move(path)) {}

  // Runs f(session) with the GIL released and the session's lock held.
  template <typename F>
  auto run(F&& f) {
    pb::gil_scoped_release nogil;
    std::lock_guard lock(mutex_);
    if (!session_) fail("cannot run a session of model '{}': it is closed", path_);
    return f(*session_);
  }
  // A reference of the caller's own: close() on another thread cannot free it.
  std::shared_ptr<const Model> model() {
    std::lock_guard lock(mutex_);
    if (!session_) fail("cannot use a session of model '{}': it is closed", path_);
    return model_;
  }
  void close() {
    pb::gil_scoped_release nogil;
    std::lock_guard lock(mutex_);
    session_.reset();
    model_.reset();
  }
  bool closed() {
    std::lock_guard lock(mutex_);
    return !session_;
  }

 private:
  std::mutex mutex_;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Session> session_;
  std::string path_;
};

pb::list predictions(const std::vector<Prediction>& top) {
  pb::list out;
  for (const Prediction& p : top) out.append(pb::make_tuple(p.index, p.wnid, p.label, p.probability));
  return out;
}

pb::array_t<float> logits_array(std::vector<float>&& v, int64_t images, int64_t classes) {
  auto* owned = new std::vector<float>(std::move(v));
  pb::capsule owner(owned, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  return pb::array_t<float>({pb::ssize_t{images}, pb::ssize_t{classes}}, owned->data(), owner);
}

// run(session, k images of `per` values each, k) over the batch's images, max_batch at a time,
// the GIL released: the logits of all of them. The array is read where it lies when it is
// C-contiguous (else copied once).
template <typename T, typename Run>
std::vector<float> in_chunks(PySession& s, const pb::array& batch, int64_t n, int64_t per, int64_t classes, Run run) {
  const auto a = pb::array_t<T, pb::array::c_style>::ensure(batch);
  const T* data = a.data();
  return s.run([&](Session& session) {
    std::vector<float> all;
    all.reserve(static_cast<size_t>(n * classes));
    for (int64_t i = 0; i < n; i += session.max_batch()) {
      const int64_t k = std::min<int64_t>(session.max_batch(), n - i);
      const std::vector<float> l = run(session, std::span(data + i * per, static_cast<size_t>(k * per)), k);
      all.insert(all.end(), l.begin(), l.end());
    }
    return all;
  });
}

// NxHxWx3 uint8 (fitted images) or NxCxHxW float32 (normalized tensors), run max_batch images
// at a time.
pb::array_t<float> logits(PySession& s, const pb::array& batch) {
  const std::shared_ptr<const Model> held = s.model();
  const Model& m = *held;
  const bool pixels = batch.dtype().is(pb::dtype::of<uint8_t>());
  if (!pixels && !batch.dtype().is(pb::dtype::of<float>()))
    throw pb::type_error(fmt::format("logits takes a uint8 NxHxWx3 batch of images or a float32 NxCxHxW tensor, not {}",
                                     std::string(pb::str(batch.dtype()))));
  const std::vector<pb::ssize_t> want = pixels ? std::vector<pb::ssize_t>{m.height(), m.width(), 3}
                                               : std::vector<pb::ssize_t>{m.channels(), m.height(), m.width()};
  bool fits = batch.ndim() == 4 && batch.shape(0) >= 1;
  for (int d = 1; fits && d < 4; ++d) fits = batch.shape(d) == want[d - 1];
  if (!fits) {
    std::string got;
    for (pb::ssize_t d = 0; d < batch.ndim(); ++d) got += fmt::format("{}{}", d ? "x" : "", batch.shape(d));
    throw pb::value_error(fmt::format("logits takes {} batch of shape Nx{}x{}x{} for this model, not {}",
                                      pixels ? "a uint8" : "a float32", want[0], want[1], want[2], got.empty() ? "a scalar" : got));
  }
  const int64_t n = batch.shape(0), per = want[0] * want[1] * want[2], classes = m.classes();
  std::vector<float> out;
  if (pixels)
    out = in_chunks<uint8_t>(s, batch, n, per, classes, [](Session& session, std::span<const uint8_t> x, int64_t k) {
      return session.logits_fitted(x, static_cast<int32_t>(k));
    });
  else
    out = in_chunks<float>(s, batch, n, per, classes, [](Session& session, std::span<const float> x, int64_t) {
      return session.logits_from_tensor(x);
    });
  return logits_array(std::move(out), n, classes);
}

}  // namespace

void bind_model(pb::module_& m) {
  pb::class_<PyModel>(m, "Model")
      .def_static(
          "load",
          [](const std::string& path, int64_t memory_limit, const std::string& isa, bool dynamic_exponents,
             bool packed_weights) {
            if (memory_limit <= 0) throw pb::value_error("memory_limit must be a positive number of bytes");
            Model::Options o;
            o.memory_limit = memory_limit;
            o.isa = isa;
            o.dynamic_exponents = dynamic_exponents;
            o.packed_weights = packed_weights;
            std::shared_ptr<const Model> model;
            {
              pb::gil_scoped_release nogil;
              model = Model::load(path, o);
            }
            return PyModel(std::move(model), path);
          },
          pb::arg("path"), pb::kw_only(), pb::arg("memory_limit") = Model::kDefaultMemoryLimit, pb::arg("isa") = "",
          pb::arg("dynamic_exponents") = false, pb::arg("packed_weights") = false)
      .def_property_readonly("path", &PyModel::path)
      .def_property_readonly("closed", &PyModel::closed)
      .def("close", &PyModel::close)
      .def_property_readonly("input_shape",
                             [](const PyModel& p) {
                               const Model& m = *p.get();
                               return pb::make_tuple(m.channels(), m.height(), m.width());
                             })
      .def_property_readonly("classes", [](const PyModel& p) { return p.get()->classes(); })
      .def_property_readonly("is_integer", [](const PyModel& p) { return p.get()->is_integer(); })
      .def_property_readonly("engine", [](const PyModel& p) { return p.get()->engine_name(); })
      .def_property_readonly("labels",
                             [](const PyModel& p) {
                               pb::list out;
                               for (const Label& l : p.get()->graph().metadata.labels) out.append(pb::make_tuple(l.wnid, l.name));
                               return out;
                             })
      .def_property_readonly("metadata",
                             [](const PyModel& p) {
                               const Metadata& md = p.get()->graph().metadata;
                               pb::dict d;
                               d["channel_order"] = md.channel_order == ChannelOrder::BGR ? "BGR" : "RGB";
                               d["mean"] = md.mean;
                               d["scale"] = md.scale;
                               d["resize_shorter"] = md.resize_shorter;
                               d["source"] = md.source;
                               d["converter_version"] = md.converter_version;
                               d["converter_options"] = md.converter_options;
                               return d;
                             })
      .def(
          "session",
          [](const PyModel& p, int32_t max_batch) {
            std::shared_ptr<const Model> model = p.get();
            pb::gil_scoped_release nogil;
            return std::make_unique<PySession>(std::move(model), p.path(), max_batch);
          },
          pb::arg("max_batch") = 8)
      .def(
          "fit",
          [](const PyModel& p, const pb::array& image) {
            Image im = image_from_array(image, "image");
            const Model& m = *p.get();
            {
              pb::gil_scoped_release nogil;
              im = fit_to_input(im, m.graph().metadata, m.height(), m.width());
            }
            return array_from_image(std::move(im));
          },
          pb::arg("image"));

  pb::class_<PySession>(m, "Session")
      .def_property_readonly("closed", &PySession::closed)
      .def("close", &PySession::close)
      .def_property_readonly("max_batch", [](PySession& s) { return s.run([](Session& x) { return x.max_batch(); }); })
      .def("logits", &logits, pb::arg("batch"))
      .def(
          "classify_array",
          [](PySession& s, const pb::array& image, int32_t k) {
            const Image im = image_from_array(image, "image");
            return predictions(s.run([&](Session& x) { return x.classify(im, k); }));
          },
          pb::arg("image"), pb::arg("k") = 5)
      .def(
          "classify_path",
          [](PySession& s, const std::string& path, int32_t k) {
            return predictions(s.run([&](Session& x) { return x.classify(decode_image(path), k); }));
          },
          pb::arg("path"), pb::arg("k") = 5);
}

}  // namespace trit::py
