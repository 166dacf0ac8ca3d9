// trit-eval: one or more models over the same labelled images; per image, each model's top five
// classes and how far its logits lie from the first model's. It does the heavy work (decoding,
// resizing, inference over a pipeline of batches) for scripts/eval_imagenet.py, which finds the
// images and their labels in the dataset layouts people have, and computes and prints the totals
// (top-1, top-5, drop, agreement, logit SQNR, cross-entropy) from these records: the one place they
// are defined.
//
//   trit-eval --model A.trit [--model B.trit ...] (--data DIR | --list FILE) [--skip N] [--limit N]
//             [--threads T] [--json OUT] [--logits OUT.npy]
//
// Layouts of DIR: files whose names start with a WordNet id ("n01440764_tench.JPEG"), or one
// folder per class named by WordNet id or class name (matched against the model's labels; with no
// labels, the folders' sorted order is the class index). Images are taken in name order; --skip
// drops the first N (e.g. the calibration images), --limit keeps at most N after that.
// --list FILE: one image a line, "PATH<TAB>LABEL", in the order given; LABEL is a WordNet id, a
// class name, or a class index (0-based, the model's label order).
// The result (to --json OUT, else stdout) is JSON: each model's configuration, and every image's
// label, top-5 per model, the first model's sum of squared logits, each model's squared
// distance from them, and each model's cross-entropy on the label (-log softmax(logits)[label],
// in nats: unlike top-1 it moves with every logit, so it tells models apart on fewer images; null
// where the label is beyond the model's classes). --logits OUT.npy also writes every logit, a
// NumPy float32 array [images, models, classes] in the records' order (the models must have one
// class count), for what needs all of them (two_folds.py fits each model's temperature). The
// progress bar (images per second, the first model's running top-1) goes to stderr.
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
#include <span>

#include "trit/error.h"
#include "trit/image.h"
#include "trit/json.h"
#include "trit/session.h"
#include "npy_writer.h"

namespace fs = std::filesystem;

namespace {

struct Sample {
  std::string path;
  std::string label;  // WordNet id or class folder name
};

bool is_wnid(const std::string& s) {
  return s.size() == 9 && s[0] == 'n' && std::all_of(s.begin() + 1, s.end(), ::isdigit);
}

std::vector<Sample> list_samples(const std::string& dir) {
  if (!fs::is_directory(dir)) trit::fail("cannot evaluate: '{}' is not a folder", dir);
  std::vector<Sample> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory()) {
      for (const auto& f : fs::directory_iterator(e.path()))
        if (f.is_regular_file() && trit::is_image_file(f.path().string())) out.push_back({f.path().string(), e.path().filename().string()});
    } else if (e.is_regular_file() && trit::is_image_file(e.path().string())) {
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

constexpr size_t kChunk = 16;  // images per batch of the pipeline

struct Runner {
  std::string path;
  std::shared_ptr<const trit::Model> model;
  std::unique_ptr<trit::Session> session;
  std::map<std::string, int> class_of;  // label -> class index
  int top1 = 0;                         // for the progress bar
  std::vector<int> truths;
  std::vector<std::vector<int32_t>> top5s;  // per image, best first (fewer where the model has fewer classes)
  std::vector<double> logit_error;          // per image, sum (logit - first model's)^2; NaN: other classes
  std::vector<double> nll;                  // per image, -log softmax(logits)[truth], in nats
  int classes = 0;

  int class_index(const std::string& label) const {
    if (auto it = class_of.find(label); it != class_of.end()) return it->second;
    if (is_index(label) && std::stoi(label) < classes) return std::stoi(label);
    trit::fail("cannot evaluate '{}': no class of the model is named '{}'", path, label);
  }
};

std::string describe(const trit::Graph& g) {
  std::map<std::string, int> count;
  for (const auto& n : g.nodes)
    if (trit::has_weights(n)) {
      std::string k = trit::to_string(n.weights.encoding);
      if (n.weights.encoding == trit::WeightEncoding::TernaryClustered || n.weights.encoding == trit::WeightEncoding::Int4Clustered)
        k += fmt::format(" N={} {}", n.weights.cluster_size, trit::to_string(n.weights.cluster_shape));
      ++count[k];
    }
  std::string s;
  for (const auto& [k, c] : count) s += fmt::format("{}{} x{}", s.empty() ? "" : ", ", k, c);
  return s;
}

// Each model, loaded, with its classes named by the labels the images carry.
std::vector<Runner> load_runners(const std::vector<std::string>& models, bool dynamic, const std::vector<Sample>& samples) {
  std::vector<std::string> folders;
  for (const auto& s : samples) folders.push_back(s.label);
  std::sort(folders.begin(), folders.end());
  folders.erase(std::unique(folders.begin(), folders.end()), folders.end());
  std::vector<Runner> runners(models.size());
  for (size_t m = 0; m < models.size(); ++m) {
    Runner& r = runners[m];
    r.path = models[m];
    trit::Model::Options options;
    options.dynamic_exponents = dynamic;
    r.model = trit::Model::load(models[m], options);
    r.session = std::make_unique<trit::Session>(r.model, static_cast<int32_t>(kChunk));
    const auto& labels = r.model->graph().metadata.labels;
    for (size_t c = 0; c < labels.size(); ++c) {
      if (!labels[c].wnid.empty()) r.class_of[labels[c].wnid] = static_cast<int>(c);
      r.class_of[labels[c].name] = static_cast<int>(c);
    }
    if (labels.empty())
      for (size_t c = 0; c < folders.size(); ++c) r.class_of[folders[c]] = static_cast<int>(c);
    r.classes = r.model->classes();
    for (const auto& f : folders) r.class_index(f);  // every label known before the first image
  }
  return runners;
}

// -log of the softmax of logits at class truth, in double, from the largest logit down (no
// overflow): log sum exp(l - max) - (l[truth] - max). NaN when truth is not one of the classes.
double cross_entropy(std::span<const float> logits, int truth) {
  if (truth < 0 || static_cast<size_t>(truth) >= logits.size()) return NAN;
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - top);
  return std::log(sum) - (double(logits[truth]) - top);
}

// One batch's logits from every model: each model's top five, its cross-entropy on the label, and
// its logits' squared distance from the first model's (logit_signal gets the first model's own
// power per image).
void score_batch(std::vector<Runner>& runners, const std::vector<Sample>& samples, size_t begin,
                 const std::vector<trit::Image>& images, std::vector<double>& logit_signal, NpyWriter* logits_out) {
  const size_t count = images.size();
  std::vector<std::vector<float>> every(runners.size());
  const std::vector<float>& first = every[0];  // filled by the first pass of the loop
  for (Runner& r : runners) {
    const std::vector<float>& logits = every[&r - runners.data()] = r.session->logits_fitted(images);
    const size_t classes = logits.size() / count;
    if (&r == &runners[0]) {
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
      const auto top = trit::top_classes(std::span(logits).subspan(i * classes, classes), 5);
      const int truth = r.class_index(samples[begin + i].label);
      r.top1 += !top.empty() && top[0] == truth;
      r.nll.push_back(cross_entropy(std::span(logits).subspan(i * classes, classes), truth));
      r.truths.push_back(truth);
      r.top5s.push_back(top);
    }
  }
  if (logits_out)  // [image][model][class]: every model has the same class count (checked in main)
    for (size_t i = 0; i < count; ++i)
      for (const auto& logits : every) logits_out->append(std::span(logits).subspan(i * logits.size() / count, logits.size() / count));
}

// The images through every model, over a pipeline of batches: decoding and resizing (in
// parallel) run a batch or two ahead of the models, which take the batches in order.
std::vector<double> run_all(std::vector<Runner>& runners, const std::vector<Sample>& samples, tbb::task_arena& arena,
                            NpyWriter* logits_out) {
  const auto start = std::chrono::steady_clock::now();
  const trit::Model& model0 = *runners[0].model;
  struct Batch {
    size_t begin = 0, count = 0;
    std::vector<trit::Image> images;
  };
  size_t next = 0;
  std::vector<double> logit_signal;  // per image, the first model's sum of squared logits
  auto source = [&](tbb::flow_control& fc) -> std::shared_ptr<Batch> {
    if (next == samples.size()) {
      fc.stop();
      return nullptr;
    }
    auto b = std::make_shared<Batch>();
    b->begin = next;
    b->count = std::min(kChunk, samples.size() - next);
    next += b->count;
    return b;
  };
  auto decode = [&](std::shared_ptr<Batch> b) {
    b->images.resize(b->count);
    tbb::parallel_for(size_t{0}, b->count, [&](size_t i) {
      b->images[i] = trit::fit_to_input(trit::decode_image(samples[b->begin + i].path), model0.graph().metadata,
                                        model0.height(), model0.width());
    });
    return b;
  };
  auto score = [&](std::shared_ptr<Batch> b) {
    score_batch(runners, samples, b->begin, b->images, logit_signal, logits_out);
    const size_t done = b->begin + b->count;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int bar = static_cast<int>(30 * done / samples.size());
    std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu  %.1f images/s  top-1 %.1f%%   ", bar, "##############################",
                 30 - bar, "", done, samples.size(), done / seconds, 100.0 * runners[0].top1 / double(done));
  };
  arena.execute([&] {
    tbb::parallel_pipeline(3, tbb::make_filter<void, std::shared_ptr<Batch>>(tbb::filter_mode::serial_in_order, source) &
                                  tbb::make_filter<std::shared_ptr<Batch>, std::shared_ptr<Batch>>(tbb::filter_mode::parallel, decode) &
                                  tbb::make_filter<std::shared_ptr<Batch>, void>(tbb::filter_mode::serial_in_order, score));
  });
  std::fprintf(stderr, "\n");
  return logit_signal;
}

std::string result_json(const std::vector<Runner>& runners, const std::vector<Sample>& samples,
                        const std::vector<double>& logit_signal, const std::string& source, int skip, bool dynamic,
                        int threads, double seconds) {
  std::string json = fmt::format(
      "{{\"data\": {}, \"images\": {}, \"skip\": {}, \"dynamic_exponents\": {}, \"threads\": {}, "
      "\"seconds\": {:.3f}, \"models\": [",
      trit::json_quote(source), samples.size(), skip, dynamic, threads, seconds);
  for (size_t m = 0; m < runners.size(); ++m)
    json += fmt::format("{}{{\"model\": {}, \"weights\": {}, \"bytes\": {}}}", m ? ", " : "",
                        trit::json_quote(runners[m].path), trit::json_quote(describe(runners[m].model->graph())),
                        fs::file_size(runners[m].path));
  // Every image: its label, and per model the class index of the label and the top five.
  json += "],\n\"per_image\": [";
  for (size_t i = 0; i < samples.size(); ++i) {
    std::string truth, top, error, nll;
    for (size_t m = 0; m < runners.size(); ++m) {
      truth += fmt::format("{}{}", m ? ", " : "", runners[m].truths[i]);
      const double x = runners[m].nll[i];
      nll += fmt::format("{}{}", m ? ", " : "", std::isfinite(x) ? fmt::format("{:.9g}", x) : "null");
      const double e = runners[m].logit_error[i];
      error += fmt::format("{}{}", m ? ", " : "", std::isfinite(e) ? fmt::format("{:.9g}", e) : "null");
      top += fmt::format("{}[{}]", m ? ", " : "", fmt::join(runners[m].top5s[i], ", "));
    }
    json += fmt::format(
        "{}\n  {{\"path\": {}, \"label\": {}, \"truth\": [{}], \"top5\": [{}], \"logit_signal\": {:.9g}, "
        "\"logit_error\": [{}], \"nll\": [{}]}}",
        i ? "," : "", trit::json_quote(samples[i].path), trit::json_quote(samples[i].label), truth, top, logit_signal[i],
        error, nll);
  }
  return json + "\n]}\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trit-eval: models over labelled images, per image (scripts/eval_imagenet.py makes the tables)"};
  std::vector<std::string> models;
  std::string data, list, json_path, logits_path;
  int skip = 0, limit = 0, threads = 0;
  bool dynamic = false;
  app.add_option("-m,--model", models, "trit models; the first is the reference for agreement")->required();
  auto* data_opt = app.add_option("--data", data, "image folder");
  app.add_option("--list", list, "image list: PATH<TAB>LABEL a line (label: WordNet id, class name or index)")
      ->excludes(data_opt);
  app.add_option("--skip", skip, "leave out the first N images (e.g. the calibration images)")->check(CLI::Range(0, 100000000));
  app.add_option("--limit", limit, "evaluate at most N images")->check(CLI::Range(0, 100000000));
  app.add_option("-t,--threads", threads, "threads (default: all cores)")->check(CLI::Range(0, 4096));
  app.add_option("--json", json_path, "write the results there (default: standard output)");
  app.add_option("--logits", logits_path, "also write every logit there: a .npy float32 array [images, models, classes]");
  app.add_flag("--dynamic-exponents", dynamic, "integer models: each activation's exponent from its own values");
  CLI11_PARSE(app, argc, argv);

  try {
    if (data.empty() == list.empty()) trit::fail("cannot evaluate: give --data DIR or --list FILE");
    std::vector<Sample> samples = list.empty() ? list_samples(data) : read_list(list);
    samples.erase(samples.begin(), samples.begin() + std::min<size_t>(skip, samples.size()));
    if (limit > 0 && samples.size() > static_cast<size_t>(limit)) samples.resize(limit);
    if (samples.empty()) trit::fail("cannot evaluate: no images left after --skip {}", skip);
    std::vector<Runner> runners = load_runners(models, dynamic, samples);
    std::unique_ptr<NpyWriter> logits_out;
    if (!logits_path.empty()) {
      for (const Runner& r : runners)
        if (r.classes != runners[0].classes)
          trit::fail("cannot write the logits to '{}': '{}' has {} classes and '{}' {}", logits_path, runners[0].path,
                     runners[0].classes, r.path, r.classes);
      logits_out = std::make_unique<NpyWriter>(logits_path, std::vector<size_t>{samples.size(), runners.size(),
                                                                               static_cast<size_t>(runners[0].classes)});
    }
    tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<double> signal = run_all(runners, samples, arena, logits_out.get());
    if (logits_out) logits_out->finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string json = result_json(runners, samples, signal, list.empty() ? data : list, skip, dynamic,
                                         arena.max_concurrency(), seconds);
    if (json_path.empty()) {
      std::fputs(json.c_str(), stdout);
    } else {
      std::ofstream out(json_path);
      out << json;
      if (!out) trit::fail("cannot write '{}'", json_path);
    }
    std::fprintf(stderr, "%zu images, %.1f s\n", samples.size(), seconds);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trit-eval: %s\n", e.what());
    return 1;
  }
}
