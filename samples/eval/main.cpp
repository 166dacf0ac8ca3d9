// trit-eval: top-1 and top-5 of one or more models over the same labelled images, with the
// agreement of each model's top-1 with the first model's.
//
//   trit-eval --model A.trit [--model B.trit ...] --data DIR [--skip N] [--limit N] [--threads T] [--json OUT]
//
// Layouts of DIR: files whose names start with a WordNet id ("n01440764_tench.JPEG"), or one
// folder per class named by WordNet id or class name (matched against the model's labels; with no
// labels, the folders' sorted order is the class index). Images are taken in name order; --skip
// drops the first N (e.g. the calibration images), --limit keeps at most N after that.
#include <CLI/CLI.hpp>
#include <tbb/parallel_for.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>

#include "trit/error.h"
#include "trit/engine.h"
#include "trit/float_executor.h"
#include "trit/image.h"
#include "trit/int_executor.h"
#include "trit/json.h"
#include "trit/model_file.h"

namespace fs = std::filesystem;

namespace {

struct Sample {
  std::string path;
  std::string label;  // WordNet id or class folder name
};

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

bool is_wnid(const std::string& s) {
  return s.size() == 9 && s[0] == 'n' && std::all_of(s.begin() + 1, s.end(), ::isdigit);
}

std::vector<Sample> list_samples(const std::string& dir) {
  if (!fs::is_directory(dir)) trit::fail("cannot evaluate: '{}' is not a folder", dir);
  std::vector<Sample> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory()) {
      for (const auto& f : fs::directory_iterator(e.path()))
        if (f.is_regular_file() && is_image(f.path())) out.push_back({f.path().string(), e.path().filename().string()});
    } else if (e.is_regular_file() && is_image(e.path())) {
      const std::string name = e.path().filename().string();
      const std::string prefix = name.substr(0, name.find('_'));
      if (!is_wnid(prefix)) trit::fail("cannot evaluate: '{}' does not start with a WordNet id", name);
      out.push_back({e.path().string(), prefix});
    }
  }
  std::sort(out.begin(), out.end(), [](const Sample& a, const Sample& b) { return a.path < b.path; });
  if (out.empty()) trit::fail("cannot evaluate: '{}' holds no images", dir);
  return out;
}

struct Runner {
  std::string path;
  std::shared_ptr<const trit::Graph> graph;
  std::unique_ptr<trit::FloatExecutor> fexec;
  std::unique_ptr<trit::IntExecutor> iexec;  // integer models the fast kernels do not take
  std::unique_ptr<trit::Engine> engine;      // the other integer models
  std::unique_ptr<trit::Workspace> workspace;
  std::map<std::string, int> class_of;  // label -> class index
  int top1 = 0, top5 = 0, agree = 0;
  std::vector<int> predictions;

  std::vector<float> logits(const std::vector<trit::Image>& images) {
    if (engine) {
      if (!workspace || workspace->batch() < static_cast<int32_t>(images.size()))
        workspace = std::make_unique<trit::Workspace>(*engine, static_cast<int32_t>(images.size()));
      return engine->classify(*workspace, images);
    }
    if (iexec) return iexec->classify(images);
    const int64_t n = graph->input().elements();
    std::vector<float> x(images.size() * n);
    for (size_t i = 0; i < images.size(); ++i) trit::normalize(images[i], graph->metadata, std::span(x).subspan(i * n, n));
    return fexec->run(x, static_cast<int32_t>(images.size()));
  }
};

std::string describe(const trit::Graph& g) {
  std::map<std::string, int> count;
  for (const auto& n : g.nodes)
    if (n.op == trit::OpCode::Conv || n.op == trit::OpCode::FullyConnected) {
      std::string k = trit::to_string(n.weights.encoding);
      if (n.weights.encoding == trit::WeightEncoding::TernaryClustered || n.weights.encoding == trit::WeightEncoding::Int4Clustered)
        k += fmt::format(" N={} {}", n.weights.cluster_size,
                         n.weights.cluster_shape == trit::ClusterShape::Kernels ? "kernels" : "channels");
      ++count[k];
    }
  std::string s;
  for (const auto& [k, c] : count) s += fmt::format("{}{} x{}", s.empty() ? "" : ", ", k, c);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trit-eval: accuracy of trit models on labelled images"};
  std::vector<std::string> models;
  std::string data, json_path;
  int skip = 0, limit = 0, threads = 0;
  bool dynamic = false;
  app.add_option("-m,--model", models, "trit models; the first is the reference for agreement")->required();
  app.add_option("--data", data, "image folder")->required();
  app.add_option("--skip", skip, "leave out the first N images (e.g. the calibration images)")->check(CLI::Range(0, 100000000));
  app.add_option("--limit", limit, "evaluate at most N images")->check(CLI::Range(0, 100000000));
  app.add_option("-t,--threads", threads, "threads (default: all cores)")->check(CLI::Range(0, 4096));
  app.add_option("--json", json_path, "write the results as JSON");
  app.add_flag("--dynamic-exponents", dynamic, "integer models: each activation's exponent from its own values");
  CLI11_PARSE(app, argc, argv);

  try {
    std::vector<Sample> samples = list_samples(data);
    samples.erase(samples.begin(), samples.begin() + std::min<size_t>(skip, samples.size()));
    if (limit > 0 && samples.size() > static_cast<size_t>(limit)) samples.resize(limit);
    if (samples.empty()) trit::fail("cannot evaluate: no images left after --skip {}", skip);
    std::vector<std::string> folders;
    for (const auto& s : samples) folders.push_back(s.label);
    std::sort(folders.begin(), folders.end());
    folders.erase(std::unique(folders.begin(), folders.end()), folders.end());

    std::vector<Runner> runners(models.size());
    for (size_t m = 0; m < models.size(); ++m) {
      Runner& r = runners[m];
      r.path = models[m];
      r.graph = std::make_shared<const trit::Graph>(trit::load_model(models[m]));
      if (!trit::is_integer_model(*r.graph)) r.fexec = std::make_unique<trit::FloatExecutor>(r.graph);
      else if (dynamic || !trit::Engine::unsupported_reason(*r.graph).empty())
        r.iexec = std::make_unique<trit::IntExecutor>(r.graph, dynamic);
      else r.engine = std::make_unique<trit::Engine>(r.graph);
      const auto& labels = r.graph->metadata.labels;
      for (size_t c = 0; c < labels.size(); ++c) {
        if (!labels[c].wnid.empty()) r.class_of[labels[c].wnid] = static_cast<int>(c);
        r.class_of[labels[c].name] = static_cast<int>(c);
      }
      if (labels.empty())
        for (size_t c = 0; c < folders.size(); ++c) r.class_of[folders[c]] = static_cast<int>(c);
      for (const auto& f : folders)
        if (!r.class_of.count(f)) trit::fail("cannot evaluate '{}': no class of the model is named '{}'", models[m], f);
    }

    tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
    const auto start = std::chrono::steady_clock::now();
    constexpr size_t kChunk = 16;
    const trit::Tensor& in = runners[0].graph->input();
    // A pipeline of batches: decoding and resizing (in parallel) run a batch or two ahead of
    // the models, which take the batches in order.
    struct Batch {
      size_t begin = 0, count = 0;
      std::vector<trit::Image> images;
    };
    size_t next = 0;
    arena.execute([&] {
      tbb::parallel_pipeline(
          3,
          tbb::make_filter<void, std::shared_ptr<Batch>>(tbb::filter_mode::serial_in_order,
                                                         [&](tbb::flow_control& fc) -> std::shared_ptr<Batch> {
                                                           if (next == samples.size()) {
                                                             fc.stop();
                                                             return nullptr;
                                                           }
                                                           auto b = std::make_shared<Batch>();
                                                           b->begin = next;
                                                           b->count = std::min(kChunk, samples.size() - next);
                                                           next += b->count;
                                                           return b;
                                                         }) &
              tbb::make_filter<std::shared_ptr<Batch>, std::shared_ptr<Batch>>(
                  tbb::filter_mode::parallel,
                  [&](std::shared_ptr<Batch> b) {
                    b->images.resize(b->count);
                    tbb::parallel_for(size_t{0}, b->count, [&](size_t i) {
                      b->images[i] = trit::fit_to_input(trit::decode_image(samples[b->begin + i].path),
                                                        runners[0].graph->metadata, in.shape[1], in.shape[2]);
                    });
                    return b;
                  }) &
              tbb::make_filter<std::shared_ptr<Batch>, void>(tbb::filter_mode::serial_in_order, [&](std::shared_ptr<Batch> b) {
                const size_t begin = b->begin, count = b->count;
                for (Runner& r : runners) {
                  const std::vector<float> logits = r.logits(b->images);
                  const size_t classes = logits.size() / count;
                  for (size_t i = 0; i < count; ++i) {
                    std::vector<int> order(classes);
                    std::iota(order.begin(), order.end(), 0);
                    const float* l = logits.data() + i * classes;
                    std::partial_sort(order.begin(), order.begin() + std::min<size_t>(5, classes), order.end(),
                                      [&](int a, int c) { return l[a] > l[c] || (l[a] == l[c] && a < c); });
                    const int truth = r.class_of.at(samples[begin + i].label);
                    r.top1 += order[0] == truth;
                    r.top5 += std::find(order.begin(), order.begin() + std::min<size_t>(5, classes), truth) !=
                              order.begin() + std::min<size_t>(5, classes);
                    r.predictions.push_back(order[0]);
                  }
                }
                const size_t done = begin + count;
                const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                std::fprintf(stderr, "\r[%zu/%zu] %.1f images/s, top-1 %.1f%%   ", done, samples.size(), done / seconds,
                             100.0 * runners[0].top1 / double(done));
              }));
    });
    std::fprintf(stderr, "\n");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double n = double(samples.size());
    for (Runner& r : runners)
      for (size_t i = 0; i < samples.size(); ++i) r.agree += r.predictions[i] == runners[0].predictions[i];
    std::printf("%zu images of %s (skipped %d), %.1f s\n", samples.size(), data.c_str(), skip, seconds);
    std::printf("| model | weights | top-1 | top-5 | drop in top-1 | top-1 agreement | file size |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    std::string json = fmt::format("{{\"data\": {}, \"images\": {}, \"skip\": {}, \"dynamic_exponents\": {}, \"models\": [",
                                   trit::json_quote(data), samples.size(), skip, dynamic);
    for (size_t m = 0; m < runners.size(); ++m) {
      const Runner& r = runners[m];
      const double size_mb = fs::file_size(r.path) / 1e6;
      std::printf("| %s | %s | %.1f %% | %.1f %% | %+.1f | %.1f %% | %.1f MB |\n", fs::path(r.path).filename().c_str(),
                  describe(*r.graph).c_str(), 100 * r.top1 / n, 100 * r.top5 / n,
                  100 * (runners[0].top1 - r.top1) / n, 100 * r.agree / n, size_mb);
      json += fmt::format("{}{{\"model\": {}, \"top1\": {:.6f}, \"top5\": {:.6f}, \"agreement\": {:.6f}, \"bytes\": {}}}",
                          m ? ", " : "", trit::json_quote(r.path), r.top1 / n, r.top5 / n, r.agree / n, fs::file_size(r.path));
    }
    json += "]}\n";
    if (!json_path.empty()) std::ofstream(json_path) << json;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trit-eval: %s\n", e.what());
    return 1;
  }
}
