// trit-bench: how fast a model runs, and how much memory it takes: an integer model on the fast
// kernels, a float32 model on the float path a Session runs (fused; --isa ref: the reference).
//
//   trit-bench MODEL [--threads T] [--batch B] [--iters I] [--warmup W] [--isa ISA] [--packed]
//              [--peak-gmacs G] [--json]
//
// Times whole runs of a batch of seeded random inputs (the input type's full range) and prints
// the median, min and p90 time per image, each layer's median time with its multiply-adds and,
// given the machine's int8 ceiling (--peak-gmacs, e.g. from ../shared/bench/peak.cpp, for the
// thread count used), its share of that ceiling; then the peak resident memory of the process.
// --json prints one object instead. A float32 model's inputs are seeded normal values, and it
// prints no per-layer times (its executor has no per-step timing). Speed lives here, never in a
// test.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "engine.h"
#include "float_executor.h"
#include "int8/table.h"
#include "integer_graph.h"
#include "trit/error.h"
#include "trit/json.h"
#include "trit/model_file.h"

namespace {

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return int64_t{u.ru_maxrss} * 1024;
}

struct Options {
  std::string model_path, isa;
  int threads = 1, batch = 1, iters = 20, warmup = 3;
  double peak_gmacs = 0;
  bool json = false, packed = false;
};

// What a run of the benchmark measured.
struct Measured {
  std::vector<double> per_image_ms;
  std::vector<std::vector<double>> layer_s;  // per node, each timed run's seconds
};

// Times whole runs of seeded random inputs, then runs with per-layer timing.
Measured measure(const Options& o, const trit::Graph& g, const trit::Engine* engine, trit::Workspace& ws,
                 tbb::task_arena& arena) {
  Measured m;
  const trit::Range r = trit::range_of(g.input().type);
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> d(r.lo, r.hi);
  std::vector<int32_t> input(static_cast<size_t>(g.input().elements() * o.batch));
  for (auto& v : input) v = d(rng);
  m.layer_s.resize(g.nodes.size());
  arena.execute([&] {
    for (int i = 0; i < o.warmup; ++i) engine->run(ws, input);
    for (int i = 0; i < o.iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      engine->run(ws, input);
      m.per_image_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / o.batch);
    }
    // Per-layer times, from separate runs (timing each step adds a little).
    std::vector<double> steps;
    for (int i = 0; i < std::max(3, o.iters / 2); ++i) {
      engine->run(ws, input, &steps);
      for (size_t s = 0; s < steps.size(); ++s) m.layer_s[s].push_back(steps[s]);
    }
  });
  return m;
}

// A float32 model: whole runs of the executor a Session would use, timed as measure() does.
int bench_float(const Options& o, std::shared_ptr<const trit::Graph> graph) {
  const trit::k8::Isa isa = o.isa.empty() ? trit::k8::select_isa() : trit::k8::parse_isa(o.isa.c_str());
  const trit::FloatPath path = isa == trit::k8::Isa::Ref ? trit::FloatPath::Reference : trit::FloatPath::Fused;
  const char* name = path == trit::FloatPath::Fused ? "float32 fused" : "float32 reference";
  const trit::FloatExecutor exec(graph, path, isa);
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> input(static_cast<size_t>(graph->input().elements() * o.batch));
  for (auto& v : input) v = d(rng);
  std::vector<double> per_image_ms;
  trit::FloatBuffers buffers;  // as a Session keeps them between runs
  tbb::task_arena arena(o.threads);
  arena.execute([&] {
    for (int i = 0; i < o.warmup; ++i) exec.run(input, o.batch, buffers);
    for (int i = 0; i < o.iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      exec.run(input, o.batch, buffers);
      per_image_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / o.batch);
    }
  });
  const double median = percentile(per_image_ms, 0.5), lo = percentile(per_image_ms, 0.0),
               p90 = percentile(per_image_ms, 0.9);
  int64_t weight_bytes = 0;
  for (const trit::Node& n : graph->nodes) weight_bytes += static_cast<int64_t>(n.weights.codes.size);
  if (o.json) {
    fmt::print("{{\"model\":{},\"isa\":\"{}\",\"threads\":{},\"batch\":{},\"iters\":{},\"ms_per_image\":{:.4f},"
               "\"min_ms_per_image\":{:.4f},\"p90_ms_per_image\":{:.4f},\"peak_rss_bytes\":{},\"weight_bytes\":{}}}\n",
               trit::json_quote(o.model_path), name, o.threads, o.batch, o.iters, median, lo, p90, peak_rss_bytes(),
               weight_bytes);
    return 0;
  }
  fmt::print("{}: {}, {} thread(s), batch {}, {} runs\n", o.model_path, name, o.threads, o.batch, o.iters);
  fmt::print("time per image: median {:.3f} ms, min {:.3f} ms, p90 {:.3f} ms\n", median, lo, p90);
  fmt::print("memory: weights {:.2f} MB, peak resident {:.1f} MB\n", weight_bytes / 1e6, peak_rss_bytes() / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trit-bench: time a model (integer: the fast kernels; float32: the fused path, or the reference with --isa ref)"};
  Options o;
  app.add_option("model", o.model_path, "trit model")->required();
  app.add_option("-t,--threads", o.threads, "threads")->check(CLI::Range(1, 1024));
  app.add_option("-b,--batch", o.batch, "images per run")->check(CLI::Range(1, 4096));
  app.add_option("-n,--iters", o.iters, "timed runs")->check(CLI::Range(1, 1000000));
  app.add_option("-w,--warmup", o.warmup, "untimed runs first")->check(CLI::Range(0, 1000000));
  app.add_option("--isa", o.isa, "ref, avx2, avx512vnni or amx (default: the best this CPU runs, or TRIT_ISA)");
  app.add_option("--peak-gmacs", o.peak_gmacs, "the machine's int8 ceiling at this thread count, in G multiply-adds/s")
      ->check(CLI::PositiveNumber);
  app.add_flag("--packed", o.packed, "keep ternary and int4 weights packed, expanded per layer per run");
  app.add_flag("--json", o.json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);

  try {
    auto graph = std::make_shared<const trit::Graph>(trit::load_model(o.model_path));
    if (!trit::is_integer_model(*graph)) return bench_float(o, graph);
    const trit::Graph& g = *graph;
    tbb::task_arena arena(o.threads);
    std::unique_ptr<trit::Engine> engine;
    const auto p0 = std::chrono::steady_clock::now();
    arena.execute([&] { engine = std::make_unique<trit::Engine>(graph, o.isa, o.packed); });
    const double prepare_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - p0).count();
    trit::Workspace ws(*engine, o.batch);
    const Measured m = measure(o, g, engine.get(), ws, arena);
    const int batch = o.batch, threads = o.threads, iters = o.iters;
    const double peak_gmacs = o.peak_gmacs;
    const std::string& model_path = o.model_path;
    const auto& per_image_ms = m.per_image_ms;
    const auto& layer_s = m.layer_s;
    const auto macs = engine->macs();
    int64_t total_macs = 0;
    for (int64_t m : macs) total_macs += m;
    const double median = percentile(per_image_ms, 0.5), lo = percentile(per_image_ms, 0.0),
                 p90 = percentile(per_image_ms, 0.9);
    const trit::MemoryPlan& plan = ws.plan();
    const int64_t rss = peak_rss_bytes();
    auto share = [&](int64_t m, double seconds_per_batch) {
      return peak_gmacs > 0 && seconds_per_batch > 0 ? m * batch / seconds_per_batch / (peak_gmacs * 1e9) : 0.0;
    };
    if (o.json) {
      std::string layers;
      for (size_t s = 0; s < g.nodes.size(); ++s) {
        const double t = percentile(layer_s[s], 0.5);
        layers += fmt::format("{}{{\"name\":{},\"op\":\"{}\",\"macs\":{},\"ms\":{:.4f}{}}}", s ? "," : "",
                              trit::json_quote(g.nodes[s].name), trit::to_string(g.nodes[s].op), macs[s], t * 1e3,
                              peak_gmacs > 0 && macs[s] ? fmt::format(",\"ceiling_share\":{:.3f}", share(macs[s], t)) : "");
      }
      fmt::print(
          "{{\"model\":{},\"isa\":\"{}\",\"threads\":{},\"batch\":{},\"iters\":{},\"ms_per_image\":{:.4f},"
          "\"min_ms_per_image\":{:.4f},\"p90_ms_per_image\":{:.4f},\"gmacs_per_image\":{:.4f},{}"
          "\"peak_rss_bytes\":{},\"arena_bytes\":{},\"arena_lower_bound\":{},\"weight_bytes\":{},\"packed\":{},"
          "\"expansion_bytes\":{},\"prepare_ms\":{:.1f},\"layers\":[{}]}}\n",
          trit::json_quote(model_path), engine->isa(), threads, batch, iters, median, lo, p90, total_macs / 1e9,
          peak_gmacs > 0 ? fmt::format("\"ceiling_share\":{:.3f},", share(total_macs, median * batch / 1e3)) : "", rss,
          plan.arena_bytes, plan.lower_bound, engine->weight_bytes(), o.packed, engine->expansion_bytes(), prepare_ms,
          layers);
      return 0;
    }
    fmt::print("{}: {} path, {} thread(s), batch {}, {} runs\n", model_path, engine->isa(), threads, batch, iters);
    fmt::print("{:<40} {:>18} {:>10} {:>9}{}\n", "layer", "op", "MMACs", "ms", peak_gmacs > 0 ? "  ceiling" : "");
    for (size_t s = 0; s < g.nodes.size(); ++s) {
      const double t = percentile(layer_s[s], 0.5);
      fmt::print("{:<40} {:>18} {:>10.1f} {:>9.3f}{}\n", g.nodes[s].name, trit::to_string(g.nodes[s].op), macs[s] / 1e6,
                 t * 1e3, peak_gmacs > 0 && macs[s] ? fmt::format("  {:>6.1f} %", 100 * share(macs[s], t)) : "");
    }
    double layers_ms = 0;
    for (const auto& t : layer_s) layers_ms += percentile(t, 0.5) * 1e3;
    fmt::print("layers: {:.3f} ms per run; the rest (input conversion, scheduling): {:.3f} ms\n", layers_ms,
               median * batch - layers_ms);
    fmt::print("time per image: median {:.3f} ms, min {:.3f} ms, p90 {:.3f} ms ({:.2f} G multiply-adds per image{})\n",
               median, lo, p90, total_macs / 1e9,
               peak_gmacs > 0 ? fmt::format(", {:.1f} % of the ceiling", 100 * share(total_macs, median * batch / 1e3)) : "");
    fmt::print("memory: arena {:.2f} MB (lower bound {:.2f} MB), weights {:.2f} MB{}, peak resident {:.1f} MB\n",
               plan.arena_bytes / 1e6, plan.lower_bound / 1e6, engine->weight_bytes() / 1e6,
               o.packed ? fmt::format(" packed (expanded per layer into {:.2f} MB)", engine->expansion_bytes() / 1e6) : "",
               rss / 1e6);
    fmt::print("prepare (unpack, expand and repack the weights): {:.1f} ms\n", prepare_ms);
    return 0;
  } catch (const trit::Error& e) {
    fmt::print(stderr, "trit-bench: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "trit-bench: {}\n", e.what());
    return 1;
  }
}
