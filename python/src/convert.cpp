// trit._trit.convert: trit-convert's job (converter/convert.h) on the command line's words.
//
// The words are parsed by trit-convert's own option table (add_convert_options), so Python takes
// exactly its options and their checks. Progress goes to a Python callable
// progress(stage, done, total, line) with stage "note", "float" (the float network's images),
// "layer" or "block"; the callable runs with the GIL held, and so does a check for signals at
// each call: Ctrl-C, or an exception the callable raises, stops the conversion (no file is
// written) and is raised from convert().
#include <optional>
#include <string>
#include <vector>

#include "bindings.h"
#include "trit/error.h"

#ifdef TRIT_PYTHON_HAS_CONVERTER
#include <pybind11/stl.h>

#include "convert.h"
#endif

namespace trit::py {

#ifdef TRIT_PYTHON_HAS_CONVERTER
namespace {

std::string join(const std::vector<std::string>& words) {
  std::string s;
  for (const std::string& w : words) s += (s.empty() ? "" : " ") + w;
  return s;
}

pb::dict convert(const std::vector<std::string>& words, const pb::object& progress) {
  CLI::App app{"trit.convert"};
  ConvertArgs args;
  add_convert_options(app, args);
  try {
    std::vector<std::string> reversed(words.rbegin(), words.rend());  // CLI11 takes them last first
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    throw pb::value_error(fmt::format("trit.convert: {}", e.what()));
  }

  // A Python exception (the callable's, or KeyboardInterrupt) is kept here while the
  // conversion unwinds as a trit::Error, and raised once the GIL is back.
  std::optional<pb::error_already_set> raised;
  const auto report = [&](const char* stage, int64_t done, int64_t total, const std::string& line) {
    pb::gil_scoped_acquire gil;
    if (raised) throw Error("interrupted");
    try {
      if (PyErr_CheckSignals() != 0) throw pb::error_already_set();
      if (!progress.is_none()) progress(stage, done, total, line);
    } catch (pb::error_already_set& e) {
      raised.emplace(std::move(e));
      throw Error("interrupted");
    }
  };
  ConvertCallbacks cb;
  cb.note = [&](const std::string& line) { report("note", 0, 0, line); };
  cb.float_images = [&](int64_t done, int64_t total) {
    report("float", done, total, fmt::format("float network: {}/{} images", done, total));
  };
  cb.layer = [&](int pass, int passes, size_t i, size_t n, const LayerReport& l, double seconds) {
    report("layer", int64_t(i + 1), int64_t(n), layer_line(pass, passes, i, n, l, seconds));
  };
  cb.synthetic = [&](int32_t group, int32_t groups, int32_t it, int32_t its, double loss) {
    const int64_t done = int64_t{group} * its + it + 1, total = int64_t{groups} * its;
    report("synthetic", done, total,
           fmt::format("synthetic images: group {}/{}, step {}/{}, batch-norm loss {:.4f}", group + 1, groups, it + 1, its, loss));
  };
  cb.block = [&](const recon::BlockResult& b, int32_t iteration, double train, double held) {
    report("block", iteration, b.seconds == 0 ? -1 : iteration, block_line(b, iteration, train, held));
  };

  ConvertResult r;
  std::optional<Error> failed;
  {
    pb::gil_scoped_release nogil;
    try {
      r = trit::convert(args, join(words), cb);
    } catch (const Error& e) {
      failed.emplace(e);
    }
  }
  if (raised) {
    raised->restore();
    throw pb::error_already_set();
  }
  if (failed) throw *failed;

  pb::dict out;
  const pb::module_ json = pb::module_::import("json");
  out["report"] = r.quantized ? json.attr("loads")(r.report.json()) : pb::object(pb::none());
  out["output"] = args.output;
  out["nodes"] = r.nodes;
  out["parameters"] = r.stats.parameters;
  out["batch_norms_folded"] = r.stats.folded_batch_norms;
  out["labels"] = r.labels;
  return out;
}

}  // namespace

void bind_convert(pb::module_& m) {
  m.attr("has_converter") = true;
  m.def("convert", &convert, pb::arg("words"), pb::arg("progress") = pb::none());
}
#else
void bind_convert(pb::module_& m) {
  m.attr("has_converter") = false;
  m.def(
      "convert", [](const pb::object&, const pb::object&) { fail("cannot convert: trit was built without the converter"); },
      pb::arg("words"), pb::arg("progress") = pb::none());
}
#endif

}  // namespace trit::py
