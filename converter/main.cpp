// trit-convert: ONNX ResNet -> .trit model. The options and their translation are options.h's;
// the steps are onnx_import.h, quantize.h and trit/model_file.h.
#include <CLI/CLI.hpp>

#include <malloc.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "convert.h"
#include "trit/error.h"

namespace {

std::string join_args(int argc, char** argv) {
  std::string s;
  for (int i = 1; i < argc; ++i) s += (i > 1 ? " " : "") + std::string(argv[i]);
  return s;
}

void print_layer(int pass, int passes, size_t i, size_t n, const trit::LayerReport& l, double seconds) {
  std::fprintf(stderr, "%s\n", trit::layer_line(pass, passes, i, n, l, seconds).c_str());
}

void print_block(const trit::recon::BlockResult& b, int32_t iteration, double train, double held) {
  std::fprintf(stderr, "%s\n", trit::block_line(b, iteration, train, held).c_str());
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
  trit::ConvertArgs args;
  trit::add_convert_options(app, args);
  CLI11_PARSE(app, argc, argv);
  // Calibration allocates and frees tensors of up to hundreds of MB per layer. glibc would map
  // each from the kernel afresh (page faults, zeroing: a quarter of the conversion time on this
  // VM); from the heap, and never trimmed, freed tensors are reused instead.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);

  try {
    const auto start = std::chrono::steady_clock::now();
    trit::ConvertCallbacks cb;
    cb.note = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    cb.float_images = [start](int64_t done, int64_t total) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\rfloat network: %lld/%lld images, %.1f s%s", static_cast<long long>(done),
                   static_cast<long long>(total), s, done == total ? "\n" : "");
    };
    cb.synthetic = [start](int32_t group, int32_t groups, int32_t it, int32_t its, double loss) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\rsynthetic images: group %d/%d, step %d/%d, batch-norm loss %.4f, %.0f s%s", group + 1, groups,
                   it + 1, its, loss, s, it + 1 == its ? "\n" : "");
    };
    cb.layer = print_layer;
    cb.block = print_block;
    const trit::ConvertResult r = trit::convert(args, join_args(argc, argv), cb);
    if (r.quantized) print_summary(r.report);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::fprintf(stderr,
                 "wrote %s: %zu nodes, %lld parameters (%s), %d batch norms folded, %d ReLUs "
                 "fused, %d biases folded, %zu labels; %.1f s, peak memory %.0f MB\n",
                 args.output.c_str(), r.nodes, static_cast<long long>(r.stats.parameters), args.weights.c_str(),
                 r.stats.folded_batch_norms, r.stats.fused_relus, r.stats.folded_biases, r.labels, seconds,
                 usage.ru_maxrss / 1024.0);
    return 0;
  } catch (const trit::Error& e) {
    std::fprintf(stderr, "trit-convert: %s\n", e.what());
    return 1;
  }
}
