// infer: classify images with a trit model.
//
//   infer [--model M] [--top K] [--json] [--threads T] IMAGE...
//
// Prints, per image, the top K classes with WordNet id, name and probability; --json prints one
// JSON object a line instead. An image that cannot be read is reported on its own line (stderr)
// and the others still run; the exit status is then 1.
#include <CLI/CLI.hpp>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <unistd.h>

#include "trit/error.h"
#include "trit/json.h"
#include "trit/engine.h"
#include "trit/float_executor.h"
#include "trit/image.h"
#include "trit/int_executor.h"
#include "trit/model_file.h"

namespace {

// The model scripts/demo.sh makes: models/resnet50.trit in the source tree, which is two levels
// above build/bin; or in the current directory's models/.
std::string default_model() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto p = exe.parent_path().parent_path().parent_path() / "models" / "resnet50.trit";
    if (std::filesystem::exists(p, ec)) return p.string();
  }
  return "models/resnet50.trit";
}


std::vector<float> softmax(std::span<const float> logits) {
  const float top = *std::max_element(logits.begin(), logits.end());
  std::vector<float> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp(logits[i] - top);
  for (float& v : p) v = static_cast<float>(v / sum);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"infer: classify images with a trit model"};
  std::string model_path;
  int top = 5, threads = 0;
  bool json = false, dynamic = false;
  std::vector<std::string> images;
  app.add_option("-m,--model", model_path, "trit model (default: the model scripts/demo.sh makes)");
  app.add_option("-k,--top", top, "classes to print per image")->check(CLI::Range(1, 1000000));
  app.add_flag("--json", json, "one JSON object per image and line");
  app.add_flag("--dynamic-exponents", dynamic, "integer models: each activation's exponent from its own values");
  app.add_option("-t,--threads", threads, "threads (default: all cores)")->check(CLI::Range(0, 4096));
  app.add_option("images", images, "JPEG, PNG or BMP files")->required();
  CLI11_PARSE(app, argc, argv);

  std::shared_ptr<const trit::Graph> graph;
  std::unique_ptr<trit::FloatExecutor> float_exec;
  std::unique_ptr<trit::IntExecutor> int_exec;
  std::unique_ptr<trit::Engine> engine;
  std::unique_ptr<trit::Workspace> workspace;
  try {
    if (model_path.empty()) {
      model_path = default_model();
      if (!std::filesystem::exists(model_path))
        trit::fail("no --model given and the demo model '{}' does not exist (run scripts/demo.sh)", model_path);
    }
    graph = std::make_shared<const trit::Graph>(trit::load_model(model_path));
    // Integer models run on the fast kernels; the reference executor takes what they do not
    // (dynamic exponents, layers kept in float).
    if (!trit::is_integer_model(*graph)) float_exec = std::make_unique<trit::FloatExecutor>(graph);
    else if (dynamic || !trit::Engine::unsupported_reason(*graph).empty())
      int_exec = std::make_unique<trit::IntExecutor>(graph, dynamic);
    else {
      engine = std::make_unique<trit::Engine>(graph);
      workspace = std::make_unique<trit::Workspace>(*engine, 1);
    }
  } catch (const trit::Error& e) {
    std::fprintf(stderr, "infer: %s\n", e.what());
    return 1;
  }
  const trit::Tensor& input = graph->input();
  const auto& labels = graph->metadata.labels;
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  int failures = 0;
  for (const std::string& path : images) {
    try {
      const trit::Image image = trit::decode_image(path);
      const trit::Image fitted = trit::fit_to_input(image, graph->metadata, input.shape[1], input.shape[2]);
      std::vector<float> logits;
      arena.execute([&] {
        if (engine) {
          logits = engine->classify(*workspace, std::span(&fitted, 1));
        } else if (int_exec) {
          logits = int_exec->classify(std::span(&fitted, 1));
        } else {
          std::vector<float> x(input.elements());
          trit::normalize(fitted, graph->metadata, x);
          logits = float_exec->run(x, 1);
        }
      });
      const std::vector<float> prob = softmax(logits);
      std::vector<int> order(prob.size());
      std::iota(order.begin(), order.end(), 0);
      const int k = std::min<int>(top, static_cast<int>(order.size()));
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](int a, int b) { return prob[a] > prob[b] || (prob[a] == prob[b] && a < b); });
      if (json) {
        std::string line = fmt::format("{{\"image\": {}, \"top\": [", trit::json_quote(path));
        for (int i = 0; i < k; ++i) {
          const int c = order[i];
          const std::string wnid = labels.empty() ? "" : labels[c].wnid;
          const std::string name = labels.empty() ? std::to_string(c) : labels[c].name;
          line += fmt::format("{}{{\"class\": {}, \"wnid\": {}, \"label\": {}, \"prob\": {:.6f}}}",
                              i ? ", " : "", c, trit::json_quote(wnid), trit::json_quote(name), prob[c]);
        }
        std::printf("%s]}\n", line.c_str());
      } else {
        std::printf("%s\n", path.c_str());
        for (int i = 0; i < k; ++i) {
          const int c = order[i];
          const std::string wnid = labels.empty() ? "" : labels[c].wnid;
          const std::string name = labels.empty() ? fmt::format("class {}", c) : labels[c].name;
          std::printf("  %d. %5.1f%%  %-9s  %s\n", i + 1, 100.0 * prob[c], wnid.c_str(), name.c_str());
        }
      }
      std::fflush(stdout);
    } catch (const trit::Error& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "infer: %s\n", e.what());
      ++failures;
    }
  }
  return failures ? 1 : 0;
}
