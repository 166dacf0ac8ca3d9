// trit-convert: ONNX ResNet -> .trit model.
#include <CLI/CLI.hpp>

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include <fstream>

#include "metadata_options.h"
#include "onnx_import.h"
#include "quantize.h"
#include "trit/error.h"
#include "trit/model_file.h"

namespace {

std::string join_args(int argc, char** argv) {
  std::string s;
  for (int i = 1; i < argc; ++i) s += (i > 1 ? " " : "") + std::string(argv[i]);
  return s;
}

trit::WeightEncoding encoding_of(const std::string& name) {
  if (name == "int8") return trit::WeightEncoding::Int8PerChannel;
  if (name == "int4") return trit::WeightEncoding::Int4Clustered;
  if (name == "ternary") return trit::WeightEncoding::TernaryClustered;
  if (name == "float") return trit::WeightEncoding::Float32;
  trit::fail("unknown weight encoding '{}' (float, int8, int4, ternary)", name);
}

int parse_int(const std::string& s, const char* what) {
  size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty()) trit::fail("{} '{}' is not a number", what, s);
  return v;
}

void print_summary(const trit::QuantizeReport& r) {
  std::map<std::string, int64_t> bytes;
  for (const auto& l : r.layers) bytes[trit::to_string(l.encoding)] += l.bytes;
  for (const auto& [enc, b] : bytes) std::fprintf(stderr, "  %-8s %8.2f MB\n", enc.c_str(), b / 1e6);
  std::fprintf(stderr, "multiplications replaced by additions: %.1f%%\n", 100 * r.replaced_share());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trit-convert: convert an ONNX ResNet into a trit model"};
  std::string input, output, preset, labels_path;
  std::vector<float> mean, scale;
  bool bgr = false, force = false;
  int resize = -1;
  app.add_option("input", input, "ONNX model")->required();
  app.add_option("-o,--output", output, "trit model to write")->required();
  app.add_option("--preset", preset, "preprocessing preset: keras-resnet50, torchvision or raw");
  app.add_option("--mean", mean, "per-channel mean in pixel units, model channel order")->delimiter(',');
  app.add_option("--scale", scale, "per-channel divisor, model channel order")->delimiter(',');
  app.add_flag("--bgr", bgr, "the model takes BGR channel order");
  app.add_option("--resize", resize, "resize the shorter side to this before the centre crop (0: straight to the input)");
  app.add_option("--labels", labels_path, "class labels, one a line: 'wnid name' or 'name'");
  app.add_flag("-f,--force", force, "replace the output file if it exists");

  // Quantization (see converter/quantize.h).
  std::string weights = "float", cluster = "4", cluster_shape = "kernels", method, threshold = "exact";
  std::string keep = "first,last", calib, report_path, exponents = "lse";
  std::vector<std::string> layer_specs;
  int calib_count = 50;
  double min_replaced = 0;
  bool bias_correction = true;
  app.add_option("--weights", weights, "float, int8, int4 or ternary")
      ->check(CLI::IsMember({"float", "int8", "int4", "ternary"}));
  app.add_option("--cluster", cluster, "cluster size N: 1, 2, 4, ..., 64, or full");
  app.add_option("--cluster-shape", cluster_shape, "kernels (N input channels x all taps) or channels (N input channels at one tap)")
      ->check(CLI::IsMember({"kernels", "channels"}));
  app.add_option("--method", method, "rtn (the paper's round to nearest) or gptq (error compensation; the default with --calib)")
      ->check(CLI::IsMember({"rtn", "gptq"}));
  app.add_option("--threshold", threshold, "ternary threshold: twn (0.7 mean |w|) or exact (least squares)")
      ->check(CLI::IsMember({"twn", "exact"}));
  app.add_flag("--bias-correction,!--no-bias-correction", bias_correction, "per-channel bias correction on the calibration images (default on)");
  app.add_option("--keep-8bit", keep, "layers kept at int8: first,last (default), first, last or none");
  app.add_option("--layer", layer_specs, "NAME=int8|int4|ternary|float: one layer's encoding (repeatable)");
  app.add_option("--calib", calib, "folder of calibration images (the first --calib-count in name order)");
  app.add_option("--calib-count", calib_count, "calibration images (default 50)")->check(CLI::Range(1, 100000));
  app.add_option("--exponents", exponents, "activation exponents: lse (least squared error) or max")
      ->check(CLI::IsMember({"lse", "max"}));
  app.add_option("--min-replaced", min_replaced,
                 "ternary: keep the layers that lose most at int4 while at least this share of multiplications "
                 "(e.g. 0.8) stays replaced by additions (two passes)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--report", report_path, "write the conversion report as JSON");
  CLI11_PARSE(app, argc, argv);
  // Calibration allocates and frees tensors of up to hundreds of MB per layer. glibc would map
  // each from the kernel afresh (page faults, zeroing: a quarter of the conversion time on this
  // VM); from the heap, and never trimmed, freed tensors are reused instead.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);

  try {
    const auto start = std::chrono::steady_clock::now();
    std::fprintf(stderr, "reading %s\n", input.c_str());
    trit::ImportStats stats;
    trit::Graph g = trit::import_onnx(input, &stats);
    trit::Metadata& m = g.metadata;
    if (!preset.empty()) trit::apply_preset(preset, m);
    if (!mean.empty()) m.mean = mean;
    if (!scale.empty()) m.scale = scale;
    if (bgr) m.channel_order = trit::ChannelOrder::BGR;
    if (resize >= 0) m.resize_shorter = resize;
    if (!labels_path.empty()) m.labels = trit::read_labels(labels_path);
    m.source = std::filesystem::path(input).filename().string();
    m.converter_version = "trit-convert " TRIT_VERSION;
    m.converter_options = join_args(argc, argv);
    if (!force && std::filesystem::exists(output))
      trit::fail("cannot write model '{}': the file exists (pass --force to replace it)", output);
    if (min_replaced > 0 && weights != "ternary")
      trit::fail("--min-replaced needs ternary weights: it keeps the ternary layers that lose most at int4");
    if (weights != "float") {
      trit::QuantizeOptions q;
      q.encoding = encoding_of(weights);
      if (cluster == "full") q.cluster = 0;
      else {
        q.cluster = parse_int(cluster, "--cluster");
        if (q.cluster < 1 || q.cluster > 65536) trit::fail("--cluster {} is outside [1, 65536]", q.cluster);
      }
      q.shape = cluster_shape == "channels" ? trit::ClusterShape::Channels : trit::ClusterShape::Kernels;
      if (calib.empty()) trit::fail("--weights {} needs calibration images: pass --calib DIR", weights);
      q.gptq = method != "rtn";
      q.threshold = threshold == "twn" ? trit::quant::Threshold::Twn : trit::quant::Threshold::Exact;
      q.bias_correction = bias_correction;
      if (keep != "first,last" && keep != "last,first" && keep != "first" && keep != "last" && keep != "none")
        trit::fail("--keep-8bit '{}' is not one of first,last, first, last, none", keep);
      q.keep_first_8bit = keep.find("first") != std::string::npos;
      q.keep_last_8bit = keep.find("last") != std::string::npos;
      for (const std::string& spec : layer_specs) {
        const size_t eq = spec.rfind('=');
        if (eq == std::string::npos || eq == 0) trit::fail("--layer '{}' is not NAME=ENCODING", spec);
        q.layers[spec.substr(0, eq)] = encoding_of(spec.substr(eq + 1));
      }
      q.calib_dir = calib;
      q.calib_count = calib_count;
      q.lse_exponents = exponents == "lse";
      q.min_replaced = min_replaced;
      std::fprintf(stderr, "calibrating on %d images of %s\n", calib_count, calib.c_str());
      trit::QuantizeReport report;
      g = trit::quantize(g, q, &report, [](int pass, size_t i, size_t n, const trit::LayerReport& l, double seconds) {
        if (pass > 0 && i == 0)
          std::fprintf(stderr, pass == 1 ? "pass 1 of 2: every layer it may as ternary, to measure each one's error\n"
                                         : "pass 2 of 2: the layers that lose most at int4\n");
        std::fprintf(stderr,
                     "[%2zu/%zu] %-24s %-7s N=%-4d %-8s zeros %5.1f%%  weight error %.3f  output error %.3f (added %.3f)  "
                     "SQNR %5.1f dB  cos %.3f  saturated %5.2f%%  %.1f s%s%s\n",
                     i + 1, n, l.name.c_str(), trit::to_string(l.encoding), l.cluster,
                     (l.encoding != trit::WeightEncoding::TernaryClustered && l.encoding != trit::WeightEncoding::Int4Clustered) ? "" : l.shape == trit::ClusterShape::Kernels ? "kernels" : "channels",
                     100 * l.zero_share, l.weight_error, l.output_error, l.added_error, l.sqnr_db, l.cosine, 100 * l.saturated,
                     seconds, l.note.empty() ? "" : "  ", l.note.c_str());
      });
      print_summary(report);
      if (!report_path.empty()) {
        std::ofstream out(report_path);
        out << report.json();
        if (!out) trit::fail("cannot write report '{}'", report_path);
      }
    }
    trit::save_model(g, output, force);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr,
                 "wrote %s: %zu nodes, %lld parameters (%s), %d batch norms folded, %d ReLUs "
                 "fused, %d biases folded, %zu labels, %.1f s\n",
                 output.c_str(), g.nodes.size(), static_cast<long long>(stats.parameters), weights.c_str(),
                 stats.folded_batch_norms, stats.fused_relus, stats.folded_biases, m.labels.size(), seconds);
    return 0;
  } catch (const trit::Error& e) {
    std::fprintf(stderr, "trit-convert: %s\n", e.what());
    return 1;
  }
}
