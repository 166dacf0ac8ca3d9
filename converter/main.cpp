// trit-convert: ONNX ResNet -> .trit model.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "metadata_options.h"
#include "onnx_import.h"
#include "trit/error.h"
#include "trit/model_file.h"

namespace {

std::string join_args(int argc, char** argv) {
  std::string s;
  for (int i = 1; i < argc; ++i) s += (i > 1 ? " " : "") + std::string(argv[i]);
  return s;
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
  CLI11_PARSE(app, argc, argv);

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
    trit::save_model(g, output, force);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr,
                 "wrote %s: %zu nodes, %lld parameters (float32), %d batch norms folded, %d ReLUs "
                 "fused, %d biases folded, %zu labels, %.1f s\n",
                 output.c_str(), g.nodes.size(), static_cast<long long>(stats.parameters),
                 stats.folded_batch_norms, stats.fused_relus, stats.folded_biases, m.labels.size(), seconds);
    return 0;
  } catch (const trit::Error& e) {
    std::fprintf(stderr, "trit-convert: %s\n", e.what());
    return 1;
  }
}
