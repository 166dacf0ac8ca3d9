#include "convert.h"

#include <filesystem>
#include <fstream>

#include "trit/error.h"
#include "trit/model_file.h"

#ifndef TRIT_VERSION
#define TRIT_VERSION "unknown"
#endif

namespace trit {

ConvertResult convert(const ConvertArgs& args, const std::string& options, const ConvertCallbacks& cb) {
  ConvertResult result;
  if (cb.note) cb.note(fmt::format("reading {}", args.input));
  Graph g = import_onnx(args.input, &result.stats);
  Metadata& m = g.metadata;
  apply_metadata_options(args, m);
  m.source = std::filesystem::path(args.input).filename().string();
  m.converter_version = "trit-convert " TRIT_VERSION;
  m.converter_options = options;
  if (!args.force && std::filesystem::exists(args.output))
    fail("cannot write model '{}': the file exists (pass --force to replace it)", args.output);
  if (std::optional<QuantizeOptions> q = quantize_options(args)) {
    if (cb.note)
      cb.note(fmt::format("calibrating on {}{}{}", args.calib.empty() ? "the list " : "",
                          args.calib.empty() ? args.calib_list : args.calib,
                          args.augment > 1 ? fmt::format(", {} views of each image", args.augment) : ""));
    q->float_progress = cb.float_images;
    q->block_progress = cb.block;
    g = quantize(g, *q, &result.report, cb.layer);
    result.quantized = true;
    if (!args.report.empty()) {
      std::ofstream out(args.report);
      out << result.report.json();
      if (!out) fail("cannot write report '{}'", args.report);
    }
  }
  save_model(g, args.output, args.force);
  result.nodes = g.nodes.size();
  result.labels = m.labels.size();
  return result;
}

}  // namespace trit
