#include "convert.h"

#include <filesystem>
#include <fstream>

#include "trit/error.h"
#include "trit/model_file.h"

#ifndef TRIT_VERSION
#define TRIT_VERSION "unknown"
#endif

namespace trit {

std::string layer_line(int pass, int passes, size_t i, size_t n, const LayerReport& l, double seconds) {
  std::string s;
  if (pass > 0 && i == 0)
    s = pass < passes ? fmt::format("pass {} of {}: every layer it may as ternary (N on each line), to measure each one's "
                                    "error\n", pass, passes)
                      : fmt::format("pass {} of {}: the layers that lose most, with smaller clusters or int4\n", pass, passes);
  const bool clustered = l.encoding == WeightEncoding::TernaryClustered || l.encoding == WeightEncoding::Int4Clustered;
  s += fmt::format(
      "[{:2}/{}] {:<24} {:<7} N={:<4} {:<8} zeros {:5.1f}%  weight error {:.3f}  output error {:.3f} (added {:.3f})  "
      "SQNR {:5.1f} dB  cos {:.3f}  saturated {:5.2f}%  {:.1f} s{}{}",
      i + 1, n, l.name, to_string(l.encoding), l.cluster, clustered ? to_string(l.shape) : "", 100 * l.zero_share,
      l.weight_error, l.output_error, l.added_error, l.sqnr_db, l.cosine, 100 * l.saturated, seconds,
      l.note.empty() ? "" : "  ", l.note);
  return s;
}

std::string block_line(const recon::BlockResult& b, int32_t iteration, double train, double held) {
  if (iteration == 0)
    return fmt::format("reconstructing block {:<22} ({} layers): error {:.4f} on training images, {:.4f} held back",
                       b.name, b.layers, train, held);
  if (b.seconds == 0) return fmt::format("  iteration {:5}: {:.4f} held back", iteration, held);
  // The last iteration's errors too when another checkpoint is kept: overfitting shows there.
  const std::string last = b.best_iteration == iteration ? ""
                                                           : fmt::format("  iteration {}: {:.4f} on training images, {:.4f} "
                                                                         "held back\n",
                                                                         iteration, b.train_last, b.held_last);
  return fmt::format(
      "{}  kept iteration {}: {:.4f} on training images (from {:.4f}), {:.4f} held back (from {:.4f}); {:.1f}% of codes "
      "changed, {:.1f} s{}",
      last, b.best_iteration, train, b.train_start, held, b.held_start, 100 * b.flipped, b.seconds,
      b.kept ? "" : " (no iteration did better on held-back images: the layer-wise result stays)");
}

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
  const bool preprocessing_given = result.stats.preprocessing || !args.preset.empty() || !args.mean.empty() ||
                                   !args.scale.empty() || args.bgr || args.resize >= 0;
  if (!preprocessing_given && cb.note)
    cb.note(fmt::format("warning: '{}' says nothing of its preprocessing (no trit.* metadata) and no --preset, --mean "
                        "or --scale was given: using RGB pixels 0-255 as they are (mean 0, scale 1), resized straight "
                        "to the input",
                        args.input));
  if (std::optional<QuantizeOptions> q = quantize_options(args)) {
    if (args.calib == "synthetic") {
      synth::SynthesisOptions so;
      so.count = args.calib_count;
      so.batch = args.synthetic_batch;
      so.iterations = args.synthetic_iters;
      so.seed = args.seed;
      if (!args.synthetic_save.empty()) synth::check_can_save(args.synthetic_save, static_cast<size_t>(so.count), args.force);
      if (cb.note)
        cb.note(fmt::format("making {} synthetic calibration images from the statistics of {} batch norms ({} steps "
                            "per group of {})",
                            so.count, result.stats.batch_norms.size(), so.iterations, so.batch));
      synth::SynthesisReport made;
      auto images = synth::synthesize(g, result.stats.batch_norms, so, &made, cb.synthetic);
      if (cb.note)
        cb.note(fmt::format("synthetic images: batch-norm loss {:.4f} at the start, {:.4f} at the end; {:.1f} s",
                            made.start_loss, made.end_loss, made.seconds));
      if (!args.synthetic_save.empty()) {
        synth::save_images(images, args.synthetic_save, args.force);
        if (cb.note) cb.note(fmt::format("saved {} images in {}", images.size(), args.synthetic_save));
      }
      q->calibration.images = std::make_shared<const std::vector<Image>>(std::move(images));
    }
    if (cb.note)
      cb.note(fmt::format("calibrating on {}{}", q->calibration.images ? "the synthetic images"
                                                 : args.calib.empty()    ? "the list " + args.calib_list
                                                                         : args.calib,
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
