// trit-eval: top-1 and top-5 of one or more models over the same labelled images, with the
// agreement of each model's top-1 with the first model's, and how closely each model's logits follow
// the first's (signal-to-noise ratio in dB over all images and classes: a continuous measure that
// moves where top-1 on a few hundred images is still noise). It does the heavy work (decoding,
// resizing, inference over a pipeline of batches) for scripts/eval_imagenet.py, which finds the
// images and their labels in the dataset layouts people have.
//
//   trit-eval --model A.trit [--model B.trit ...] (--data DIR | --list FILE) [--skip N] [--limit N]
//             [--threads T] [--json OUT]
//
// Layouts of DIR: files whose names start with a WordNet id ("n01440764_tench.JPEG"), or one
// folder per class named by WordNet id or class name (matched against the model's labels; with no
// labels, the folders' sorted order is the class index). Images are taken in name order; --skip
// drops the first N (e.g. the calibration images), --limit keeps at most N after that.
// --list FILE: one image a line, "PATH<TAB>LABEL", in the order given; LABEL is a WordNet id, a
// class name, or a class index (0-based, the model's label order).
// --json: the totals, each model's configuration, and every image's label, top-5 per model, the
// first model's sum of squared logits and each model's squared distance from them.
#include <CLI/CLI.hpp>
#include <tbb/parallel_for.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
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

std::vector<Sample> read_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) trit::fail("cannot read the image list '{}': {}", path, std::strerror(errno));
  std::vector<Sample> out;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const size_t tab = line.rfind('\t');
    if (tab == std::string::npos || tab == 0 || tab + 1 == line.size())
      trit::fail("cannot read the image list '{}': line {} is not PATH<TAB>LABEL", path, n);
    out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  if (in.bad()) trit::fail("cannot read the image list '{}': read error", path);
  if (out.empty()) trit::fail("cannot evaluate: the image list '{}' is empty", path);
  return out;
}

bool is_index(const std::string& s) {
  return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), ::isdigit);
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
  std::vector<int> truths;
  std::vector<std::array<int, 5>> top5s;  // per image, best first; -1 where the model has fewer classes
  std::vector<double> logit_error;        // per image, sum (logit - first model's)^2; NaN: other classes
  int classes = 0;

  int class_index(const std::string& label) const {
    if (auto it = class_of.find(label); it != class_of.end()) return it->second;
    if (is_index(label) && std::stoi(label) < classes) return std::stoi(label);
    trit::fail("cannot evaluate '{}': no class of the model is named '{}'", path, label);
  }

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
  std::string data, list, json_path;
  int skip = 0, limit = 0, threads = 0;
  bool dynamic = false;
  app.add_option("-m,--model", models, "trit models; the first is the reference for agreement")->required();
  auto* data_opt = app.add_option("--data", data, "image folder");
  app.add_option("--list", list, "image list: PATH<TAB>LABEL a line (label: WordNet id, class name or index)")
      ->excludes(data_opt);
  app.add_option("--skip", skip, "leave out the first N images (e.g. the calibration images)")->check(CLI::Range(0, 100000000));
  app.add_option("--limit", limit, "evaluate at most N images")->check(CLI::Range(0, 100000000));
  app.add_option("-t,--threads", threads, "threads (default: all cores)")->check(CLI::Range(0, 4096));
  app.add_option("--json", json_path, "write the results as JSON");
  app.add_flag("--dynamic-exponents", dynamic, "integer models: each activation's exponent from its own values");
  CLI11_PARSE(app, argc, argv);

  try {
    if (data.empty() == list.empty()) trit::fail("cannot evaluate: give --data DIR or --list FILE");
    std::vector<Sample> samples = list.empty() ? list_samples(data) : read_list(list);
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
      r.classes = static_cast<int>(r.graph->tensors[r.graph->outputs[0]].elements());
      for (const auto& f : folders) r.class_index(f);  // every label known before the first image
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
    std::vector<double> logit_signal;  // per image, the first model's sum of squared logits
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
                std::vector<float> first;
                for (Runner& r : runners) {
                  const std::vector<float> logits = r.logits(b->images);
                  const size_t classes = logits.size() / count;
                  if (&r == &runners[0]) {
                    first = logits;
                    for (size_t i = 0; i < count; ++i) {
                      double sum = 0;
                      for (size_t c = 0; c < classes; ++c) sum += double(logits[i * classes + c]) * logits[i * classes + c];
                      logit_signal.push_back(sum);
                    }
                  }
                  for (size_t i = 0; i < count; ++i) {
                    double err = NAN;
                    if (logits.size() == first.size()) {
                      err = 0;
                      for (size_t c = i * classes; c < (i + 1) * classes; ++c) err += (double(logits[c]) - first[c]) * (double(logits[c]) - first[c]);
                    }
                    r.logit_error.push_back(err);
                    std::vector<int> order(classes);
                    std::iota(order.begin(), order.end(), 0);
                    const float* l = logits.data() + i * classes;
                    std::partial_sort(order.begin(), order.begin() + std::min<size_t>(5, classes), order.end(),
                                      [&](int a, int c) { return l[a] > l[c] || (l[a] == l[c] && a < c); });
                    const int truth = r.class_index(samples[begin + i].label);
                    r.top1 += order[0] == truth;
                    r.top5 += std::find(order.begin(), order.begin() + std::min<size_t>(5, classes), truth) !=
                              order.begin() + std::min<size_t>(5, classes);
                    r.truths.push_back(truth);
                    std::array<int, 5> top{-1, -1, -1, -1, -1};
                    for (size_t j = 0; j < std::min<size_t>(5, classes); ++j) top[j] = order[j];
                    r.top5s.push_back(top);
                  }
                }
                const size_t done = begin + count;
                const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                const int bar = static_cast<int>(30 * done / samples.size());
                std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu  %.1f images/s  top-1 %.1f%%   ", bar,
                             "##############################", 30 - bar, "", done, samples.size(), done / seconds,
                             100.0 * runners[0].top1 / double(done));
              }));
    });
    std::fprintf(stderr, "\n");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double n = double(samples.size());
    for (Runner& r : runners)
      for (size_t i = 0; i < samples.size(); ++i) r.agree += r.top5s[i][0] == runners[0].top5s[i][0];
    const std::string source = list.empty() ? data : list;
    std::printf("%zu images of %s (skipped %d), %.1f s\n", samples.size(), source.c_str(), skip, seconds);
    std::printf("| model | weights | top-1 | top-5 | drop in top-1 | top-1 agreement | logit SQNR | file size |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    const double signal = std::accumulate(logit_signal.begin(), logit_signal.end(), 0.0);
    const int used_threads = arena.max_concurrency();
    std::string json = fmt::format(
        "{{\"data\": {}, \"images\": {}, \"skip\": {}, \"dynamic_exponents\": {}, \"threads\": {}, "
        "\"seconds\": {:.3f}, \"models\": [",
        trit::json_quote(source), samples.size(), skip, dynamic, used_threads, seconds);
    for (size_t m = 0; m < runners.size(); ++m) {
      const Runner& r = runners[m];
      const double size_mb = fs::file_size(r.path) / 1e6;
      // Logit SQNR against the first model: "-" for the first itself and for other class counts.
      const double noise = std::accumulate(r.logit_error.begin(), r.logit_error.end(), 0.0);
      const bool comparable = m > 0 && std::isfinite(noise) && noise > 0 && signal > 0;
      const std::string sqnr = comparable ? fmt::format("{:.1f} dB", 10 * std::log10(signal / noise)) : "-";
      std::printf("| %s | %s | %.1f %% | %.1f %% | %+.1f | %.1f %% | %s | %.1f MB |\n", fs::path(r.path).filename().c_str(),
                  describe(*r.graph).c_str(), 100 * r.top1 / n, 100 * r.top5 / n,
                  100 * (runners[0].top1 - r.top1) / n, 100 * r.agree / n, sqnr.c_str(), size_mb);
      json += fmt::format(
          "{}{{\"model\": {}, \"weights\": {}, \"top1\": {:.6f}, \"top5\": {:.6f}, \"agreement\": {:.6f}, "
          "\"logit_sqnr_db\": {}, \"bytes\": {}}}",
          m ? ", " : "", trit::json_quote(r.path), trit::json_quote(describe(*r.graph)), r.top1 / n, r.top5 / n,
          r.agree / n, comparable ? fmt::format("{:.4f}", 10 * std::log10(signal / noise)) : "null", fs::file_size(r.path));
    }
    // Every image: its label, and per model the class index of the label and the top five.
    json += "],\n\"per_image\": [";
    for (size_t i = 0; i < samples.size(); ++i) {
      std::string truth, top, error;
      for (size_t m = 0; m < runners.size(); ++m) {
        truth += fmt::format("{}{}", m ? ", " : "", runners[m].truths[i]);
        const double e = runners[m].logit_error[i];
        error += fmt::format("{}{}", m ? ", " : "", std::isfinite(e) ? fmt::format("{:.9g}", e) : "null");
        top += m ? ", [" : "[";
        for (int c : runners[m].top5s[i])
          if (c >= 0) top += fmt::format("{}{}", top.back() == '[' ? "" : ", ", c);
        top += "]";
      }
      json += fmt::format(
          "{}\n  {{\"path\": {}, \"label\": {}, \"truth\": [{}], \"top5\": [{}], \"logit_signal\": {:.9g}, "
          "\"logit_error\": [{}]}}",
          i ? "," : "", trit::json_quote(samples[i].path), trit::json_quote(samples[i].label), truth, top,
          logit_signal[i], error);
    }
    json += "\n]}\n";
    if (!json_path.empty()) std::ofstream(json_path) << json;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trit-eval: %s\n", e.what());
    return 1;
  }
}
