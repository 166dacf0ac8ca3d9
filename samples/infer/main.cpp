// infer: classify images with a trit model.
//
//   infer [--model M] [--top K] [--json [--logits]] [--threads T] [--stats] IMAGE...
//
// Prints, per image, the top K classes with WordNet id, name and probability; --json prints one
// JSON object a line instead (with the network's milliseconds on the image). An image that cannot be read is reported on its own line (stderr)
// and the others still run; the exit status is then 1.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "trit/error.h"
#include "trit/image.h"
#include "trit/json.h"
#include "trit/session.h"

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


// logits: printed in the JSON when not null, each float in the shortest form that reads back
// as the same bits. ms: the network's time on the image (after decoding and resizing).
void print(const std::string& path, const std::vector<trit::Prediction>& top, bool labelled, bool json,
           const std::vector<float>* logits, double ms) {
  if (json) {
    std::string line = fmt::format("{{\"image\": {}, \"ms\": {:.3f}, \"top\": [", trit::json_quote(path), ms);
    for (size_t i = 0; i < top.size(); ++i)
      line += fmt::format("{}{{\"class\": {}, \"wnid\": {}, \"label\": {}, \"prob\": {:.6f}}}", i ? ", " : "",
                          top[i].index, trit::json_quote(top[i].wnid), trit::json_quote(top[i].label), top[i].probability);
    line += "]";
    if (logits) {
      line += ", \"logits\": [";
      for (size_t i = 0; i < logits->size(); ++i) line += fmt::format("{}{}", i ? ", " : "", (*logits)[i]);
      line += "]";
    }
    std::printf("%s}\n", line.c_str());
  } else {
    std::printf("%s\n", path.c_str());
    for (size_t i = 0; i < top.size(); ++i) {
      const std::string name = labelled ? top[i].label : fmt::format("class {}", top[i].index);
      std::printf("  %zu. %5.1f%%  %-9s  %s\n", i + 1, 100.0 * top[i].probability, top[i].wnid.c_str(), name.c_str());
    }
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"infer: classify images with a trit model"};
  std::string model_path;
  int top = 5, threads = 0;
  bool json = false, logits = false, dynamic = false, packed = false, stats = false;
  std::vector<std::string> images;
  app.add_option("-m,--model", model_path, "trit model (default: the model scripts/demo.sh makes)");
  app.add_option("-k,--top", top, "classes to print per image")->check(CLI::Range(1, 1000000));
  app.add_flag("--json", json, "one JSON object per image and line");
  app.add_flag("--logits", logits, "with --json: every logit too (exact: each reads back as the same float)")->needs("--json");
  app.add_flag("--dynamic-exponents", dynamic, "integer models: each activation's exponent from its own values");
  app.add_flag("--packed", packed, "integer models: keep ternary and int4 weights packed in memory (the same answers)");
  app.add_option("-t,--threads", threads, "threads (default: all cores)")->check(CLI::Range(0, 4096));
  app.add_flag("--stats", stats, "print the engine, the arena and the peak resident memory to stderr at the end");
  app.add_option("images", images, "JPEG, PNG or BMP files")->required();
  CLI11_PARSE(app, argc, argv);

  std::shared_ptr<const trit::Model> model;
  try {
    if (model_path.empty()) {
      model_path = default_model();
      if (!std::filesystem::exists(model_path))
        trit::fail("no --model given and the demo model '{}' does not exist (run scripts/demo.sh)", model_path);
    }
    trit::Model::Options options;
    options.dynamic_exponents = dynamic;
    options.packed_weights = packed;
    model = trit::Model::load(model_path, options);
  } catch (const trit::Error& e) {
    std::fprintf(stderr, "infer: %s\n", e.what());
    return 1;
  }
  trit::Session session(model);
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);

  // A pipeline over the images: decoding and resizing run in parallel, up to one image per
  // thread ahead of the one being classified (more would hold more decoded images in memory
  // for no gain); results print in the order given.
  struct Item {
    std::string path;
    trit::Image fitted;
    std::string error;
  };
  size_t next = 0;
  int failures = 0;
  arena.execute([&] {
    tbb::parallel_pipeline(
        static_cast<size_t>(arena.max_concurrency() + 1),
        tbb::make_filter<void, std::shared_ptr<Item>>(tbb::filter_mode::serial_in_order,
                                                      [&](tbb::flow_control& fc) -> std::shared_ptr<Item> {
                                                        if (next == images.size()) {
                                                          fc.stop();
                                                          return nullptr;
                                                        }
                                                        auto item = std::make_shared<Item>();
                                                        item->path = images[next++];
                                                        return item;
                                                      }) &
            tbb::make_filter<std::shared_ptr<Item>, std::shared_ptr<Item>>(
                tbb::filter_mode::parallel,
                [&](std::shared_ptr<Item> item) {
                  try {
                    item->fitted = trit::fit_to_input(trit::decode_image(item->path), model->graph().metadata,
                                                      model->height(), model->width());
                  } catch (const trit::Error& e) {
                    item->error = e.what();
                  }
                  return item;
                }) &
            tbb::make_filter<std::shared_ptr<Item>, void>(tbb::filter_mode::serial_in_order, [&](std::shared_ptr<Item> item) {
              try {
                if (!item->error.empty()) trit::fail("{}", item->error);
                const auto start = std::chrono::steady_clock::now();
                const std::vector<float> l = session.logits_fitted(std::span(&item->fitted, 1));
                const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
                print(item->path, trit::top_k(*model, l, top), !model->graph().metadata.labels.empty(), json,
                      logits ? &l : nullptr, ms);
              } catch (const trit::Error& e) {
                std::fflush(stdout);
                std::fprintf(stderr, "infer: %s\n", e.what());
                ++failures;
              }
            }));
  });
  if (stats) {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    std::string arena = "allocated per run";
    if (const trit::MemoryPlan* plan = session.memory_plan())
      arena = fmt::format("{:.2f} MB (lower bound {:.2f} MB)", plan->arena_bytes / 1e6, plan->lower_bound / 1e6);
    std::fprintf(stderr, "infer: engine %s, arena %s, peak resident %.1f MB\n", model->engine_name().c_str(),
                 arena.c_str(), u.ru_maxrss / 1024.0);
  }
  return failures ? 1 : 0;
}
