#include "engine.h"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "int8/prepare.h"
#include "int8/table.h"
#include "int_node.h"
#include "integer_graph.h"
#include "memory_planner.h"
#include "quantized_io.h"
#include "schedule.h"
#include "trit/error.h"
#include "trit/model_file.h"

namespace trit {
namespace detail {

enum class Kind { Conv, Add, Copy, ReluS8, MaxPool, AveragePool, GlobalAveragePool, FlattenReorder };

struct Step {
  Kind kind = Kind::Copy;
  int32_t node = 0;            // the graph node it runs (a fused add's is its convolution's)
  std::vector<int32_t> in;     // a convolution with a fused add: {its input, the residual}
  int32_t out = 0;
  k8::ConvLayer conv;
  k8::AddParams add{};
  k8::PoolParams pool{};
  int64_t macs = 0;
  int32_t slot = 0;  // packed weights: the expansion buffer (1 for a branch that runs beside another)
};

struct EngineSteps {
  const k8::KernelTable* table = nullptr;
  // In execution order: one per graph node, except that a residual add fused into the
  // convolution that feeds it (fuse_residual_adds) is one step, at the add's place.
  std::vector<Step> steps;
  std::vector<int64_t> image_bytes;  // per tensor, one image's bytes in the fast layout
  std::vector<int32_t> share;        // per tensor: the tensor whose memory it reuses in place
  size_t scratch_bytes = 0;          // the most any conv call needs
  int64_t expanded_bytes[2] = {0, 0};  // packed weights: per slot, its largest layer's expanded layout
  bool input_biased = false;         // the s8 graph input is stored as value + 128
  std::optional<Schedule> schedule;
};

struct WorkspaceState {
  MemoryPlan plan;
  k8::AlignedBytes arena;
  size_t scratch_bytes = 0;
  tbb::enumerable_thread_specific<k8::AlignedBytes> scratch;
  k8::AlignedBytes expanded[2];  // packed weights: one layer expanded, per slot (Step::slot)
  // The run in progress, for run_step.
  int32_t batch = 0;
  std::vector<double>* step_seconds = nullptr;
};

}  // namespace detail

namespace {

using detail::Kind;
using detail::Step;

bool is_signed(const Tensor& t) { return t.type == ElementType::Int8; }

// One image's bytes of a tensor in the fast layout (layer.h).
int64_t layout_bytes(const Tensor& t) {
  const Shape3 s = shape3(t);
  const int64_t pixels = int64_t{s.h} * s.w;
  if (t.type == ElementType::Int32) return pixels * s.c * 4;
  return pixels * k8::channel_stride(s.c);
}

// A layer as kernels/int8/prepare.h takes it. in_biased: the input is an s8 tensor stored as
// value + 128 (layer.h).
k8::ConvLayer prepare_conv(const Graph& g, const Node& n, const k8::KernelTable& table, bool in_biased, bool packed) {
  const Tensor& in = g.tensors[n.inputs[0]];
  const Tensor& out = g.tensors[n.outputs[0]];
  const PreparedLayer p = prepare_requant(g, n);  // validates exponents and shifts
  const iref::Requant rq{p.multiplier, p.shift, p.bias, p.lo, p.hi};
  const UnpackedWeights u = unpack_weights(n);     // validates the codes
  k8::ConvSpec spec;
  spec.in = shape3(in);
  spec.out = shape3(out);
  if (n.op == OpCode::Conv) spec.window = n.window;
  spec.in_signed = is_signed(in);
  spec.in_biased = in_biased;
  spec.out_int32 = out.type == ElementType::Int32;
  spec.weights = {u.layout, u.codes, u.scales};
  spec.requant = &rq;
  spec.packed = packed;
  return k8::prepare_conv(spec, table, n.name);
}

// The step that runs node n on the fast layout.
Step make_step(const Graph& g, const Node& n, const k8::KernelTable& table, bool in_biased, bool packed) {
  Step st;
  st.node = static_cast<int32_t>(&n - g.nodes.data());
  st.in = n.inputs;
  st.out = n.outputs[0];
  const Tensor& in = g.tensors[n.inputs[0]];
  const Tensor& out = g.tensors[n.outputs[0]];
  const Range r = output_range(n, out);
  const Shape3 is = shape3(in), os = shape3(out);
  switch (n.op) {
    case OpCode::Conv:
    case OpCode::FullyConnected:
      st.kind = Kind::Conv;
      st.conv = prepare_conv(g, n, table, in_biased, packed);
      st.macs = n.weights.count() * os.h * os.w;
      break;
    case OpCode::Add: {
      const Tensor& b = g.tensors[n.inputs[1]];
      const int32_t f = std::max(in.exponent, b.exponent);
      st.kind = Kind::Add;
      st.add = {is_signed(in), is_signed(b), is_signed(out), f - in.exponent, f - b.exponent, f - out.exponent, r.lo, r.hi};
      break;
    }
    case OpCode::Relu:
      st.kind = is_signed(in) ? Kind::ReluS8 : Kind::Copy;
      break;
    case OpCode::Flatten:
      st.kind = is.h * is.w == 1 ? Kind::Copy : Kind::FlattenReorder;
      if (in.type != out.type) fail("cannot prepare node '{}': Flatten changes the element type", n.name);
      break;
    case OpCode::MaxPool:
    case OpCode::AveragePool:
    case OpCode::GlobalAveragePool:
      if (n.op == OpCode::MaxPool && in.type != out.type)
        fail("cannot prepare node '{}': MaxPool changes the element type", n.name);
      st.kind = n.op == OpCode::MaxPool ? Kind::MaxPool
                : n.op == OpCode::AveragePool ? Kind::AveragePool : Kind::GlobalAveragePool;
      st.pool = {k8::channel_stride(is.c), is.h, is.w, os.h, os.w, n.window, is_signed(in), n.count_include_pad,
                 in.exponent, out.exponent, r.lo, r.hi};
      break;
  }
  return st;
}

// Fuses each add whose operand is a convolution's 8-bit output that nothing else reads (a ResNet
// block's last convolution) into that convolution (layer.h, ConvLayer::residual): the step moves
// to the add's place, reads the add's other operand too and writes the add's output; the
// convolution's own output is never stored. Where both operands qualify (a projection block),
// the one with more steps of its own before it is fused (the main path's last convolution), so
// that the other (the projection) may still run beside that path.
std::vector<Step> fuse_residual_adds(std::vector<Step> steps, const Graph& g, const std::vector<int64_t>& image_bytes) {
  std::vector<int32_t> writer(g.tensors.size(), -1), readers(g.tensors.size(), 0);
  for (size_t i = 0; i < steps.size(); ++i) {
    writer[steps[i].out] = static_cast<int32_t>(i);
    for (int32_t t : steps[i].in) ++readers[t];
  }
  for (int32_t t : g.outputs) ++readers[t];
  // The unfused steps' dependencies: precedes(k, w) is true when step w depends on step k.
  std::vector<std::vector<int32_t>> inputs;
  std::vector<int32_t> outputs;
  for (const Step& st : steps) {
    inputs.push_back(st.in);
    outputs.push_back(st.out);
  }
  const Schedule unfused(inputs, outputs, g.tensors.size());
  std::vector<bool> gone(steps.size(), false);
  for (size_t j = 0; j < steps.size(); ++j) {
    Step& add = steps[j];
    if (add.kind != Kind::Add || add.in[0] == add.in[1]) continue;
    auto fusable = [&](int32_t q) {
      const int32_t t = add.in[q], w = writer[t];
      return w >= 0 && !gone[w] && steps[w].kind == Kind::Conv && !steps[w].conv.out_int32 &&
             !steps[w].conv.residual && readers[t] == 1 && image_bytes[t] == image_bytes[add.out];
    };
    auto own_steps = [&](int32_t q) {  // steps operand q's writer depends on and the other's does not
      const int32_t w = writer[add.in[q]], v = writer[add.in[1 - q]];
      int64_t n = 0;
      for (int32_t k = 0; k < w; ++k) n += unfused.precedes(k, w) && (v < 0 || (k != v && !unfused.precedes(k, v)));
      return n;
    };
    int32_t q = -1;
    if (fusable(0) && fusable(1)) q = own_steps(1) > own_steps(0) ? 1 : 0;
    else if (fusable(0)) q = 0;
    else if (fusable(1)) q = 1;
    if (q < 0) continue;
    const int32_t w = writer[add.in[q]];
    Step fused = std::move(steps[w]);
    k8::AddParams p = add.add;  // a: the convolution's output, b: the residual
    if (q == 1) {
      std::swap(p.a_signed, p.b_signed);
      std::swap(p.la, p.lb);
    }
    fused.conv.residual = true;
    fused.conv.add = p;
    fused.in = {fused.in[0], add.in[1 - q]};
    fused.out = add.out;
    gone[w] = true;
    add = std::move(fused);
  }
  std::vector<Step> out;
  for (size_t i = 0; i < steps.size(); ++i)
    if (!gone[i]) out.push_back(std::move(steps[i]));
  return out;
}

}  // namespace

std::string Engine::unsupported_reason(const Graph& g) {
  if (!is_integer_model(g)) return "the model is float32";
  for (const Node& n : g.nodes) {
    for (int32_t t : n.inputs) {
      if (g.tensors[t].type == ElementType::Int32)
        return fmt::format("node '{}' reads the int32 tensor '{}'", n.name, g.tensors[t].name);
      if (g.tensors[t].type == ElementType::Float32)
        return fmt::format("node '{}' reads the float32 tensor '{}'", n.name, g.tensors[t].name);
    }
    if (has_weights(n) && n.weights.encoding == WeightEncoding::Float32)
      return fmt::format("layer '{}' is kept in float32", n.name);
  }
  for (const Tensor& t : g.tensors)
    if (t.type == ElementType::Float32) return fmt::format("tensor '{}' is float32", t.name);
  return {};
}

Engine::Engine(std::shared_ptr<const Graph> graph, std::string_view isa, bool packed)
    : graph_(std::move(graph)), steps_(std::make_unique<detail::EngineSteps>()) {
  const Graph& g = *graph_;
  if (const std::string why = unsupported_reason(g); !why.empty())
    fail("cannot prepare the model for the fast kernels: {}", why);
  detail::EngineSteps& S = *steps_;
  S.table = &k8::table_for(isa.empty() ? k8::select_isa() : k8::parse_isa(std::string(isa).c_str()));
  check_integer_graph(g);
  S.image_bytes.resize(g.tensors.size());
  for (size_t t = 0; t < g.tensors.size(); ++t) S.image_bytes[t] = layout_bytes(g.tensors[t]);

  // An s8 input that only layers read is stored biased, so that they read it in place.
  const int32_t input = g.inputs[0];
  S.input_biased = g.tensors[input].type == ElementType::Int8;
  for (const Node& n : g.nodes)
    if (std::find(n.inputs.begin(), n.inputs.end(), input) != n.inputs.end() && !has_weights(n))
      S.input_biased = false;
  for (int32_t t : g.outputs)
    if (t == input) S.input_biased = false;

  // The file's pages (loading read them all to check them) go back to the OS now, each layer's
  // again once prepared, and the whole file's once more at the end: the engine keeps its own
  // form of the weights, and the peak of a load is then one layer's codes, not the whole file's.
  release_file_pages(g);
  for (const Node& n : g.nodes) {
    S.steps.push_back(make_step(g, n, *S.table, S.input_biased && n.inputs[0] == input, packed));
    if (has_weights(n)) {
      release_file_pages(g, n.weights.codes);
      release_file_pages(g, n.weights.scales);
    }
    if (S.steps.back().kind == Kind::Conv)
      S.scratch_bytes = std::max(S.scratch_bytes, S.table->scratch_bytes(S.steps.back().conv));
  }
  release_file_pages(g);  // what preparing read since (names, shapes): the engine holds its own weights
  S.steps = fuse_residual_adds(std::move(S.steps), g, S.image_bytes);
  std::vector<std::vector<int32_t>> step_inputs;
  std::vector<int32_t> step_output;
  for (const Step& st : S.steps) {
    step_inputs.push_back(st.in);
    step_output.push_back(st.out);
  }
  S.schedule.emplace(step_inputs, step_output, g.tensors.size());
  const Schedule& sched = *S.schedule;
  // Packed weights: a step of a branch that may run beside the main path expands into slot 1.
  for (const auto& seg : sched.segments())
    for (int32_t st : seg.b) S.steps[st].slot = 1;
  for (const Step& st : S.steps)
    if (st.kind == Kind::Conv && st.conv.compact.bits != 0)
      S.expanded_bytes[st.slot] = std::max(S.expanded_bytes[st.slot], st.conv.compact.expanded_bytes());

  // In place: an elementwise node (or a fused add's residual operand) writes over an input that
  // dies with it: every other reader of the input precedes it in every schedule, and the input is
  // neither a graph input nor an output and has the same bytes. The memory plan then gives both
  // one buffer.
  S.share.resize(g.tensors.size());
  for (size_t t = 0; t < g.tensors.size(); ++t) S.share[t] = static_cast<int32_t>(t);
  std::vector<std::vector<int32_t>> readers(g.tensors.size());
  for (size_t i = 0; i < S.steps.size(); ++i)
    for (int32_t t : S.steps[i].in) readers[t].push_back(static_cast<int32_t>(i));
  auto dies_at = [&](int32_t t, size_t i) {
    for (int32_t r : readers[t])
      if (r != static_cast<int32_t>(i) && !sched.precedes(r, static_cast<int64_t>(i))) return false;
    return true;
  };
  auto pinned = [&](int32_t t) {
    return std::find(g.inputs.begin(), g.inputs.end(), t) != g.inputs.end() ||
           std::find(g.outputs.begin(), g.outputs.end(), t) != g.outputs.end();
  };
  for (size_t i = 0; i < S.steps.size(); ++i) {
    const Step& st = S.steps[i];
    const bool residual = st.kind == Kind::Conv && st.conv.residual;
    if (st.kind != Kind::Add && st.kind != Kind::Copy && st.kind != Kind::ReluS8 && !residual) continue;
    if (pinned(st.out)) continue;
    // (A convolution's window reads its input's neighbours, so never over the input it reads.)
    for (size_t q = residual ? 1 : 0; q < st.in.size(); ++q)
      if (const int32_t t = st.in[q]; dies_at(t, i) && !pinned(t) && S.image_bytes[t] == S.image_bytes[st.out] &&
                                      !(residual && t == st.in[0])) {
        S.share[st.out] = S.share[t];
        break;
      }
  }
}

Engine::~Engine() = default;

const char* Engine::isa() const { return steps_->table->name; }

std::vector<int64_t> Engine::macs() const {
  std::vector<int64_t> m(graph_->nodes.size(), 0);
  for (const Step& st : steps_->steps) m[static_cast<size_t>(st.node)] = st.macs;
  return m;
}

int64_t Engine::weight_bytes() const {
  int64_t total = 0;
  for (const Step& st : steps_->steps) total += static_cast<int64_t>(st.conv.weights.size()) + st.conv.compact.bytes();
  return total;
}

int64_t Engine::expansion_bytes() const { return steps_->expanded_bytes[0] + steps_->expanded_bytes[1]; }

MemoryPlan Engine::plan(int32_t batch) const {
  const Graph& g = *graph_;
  const detail::EngineSteps& S = *steps_;
  if (batch < 1) fail("cannot plan memory for a batch of {}", batch);
  const size_t nt = g.tensors.size();
  const int64_t end = static_cast<int64_t>(S.steps.size());
  // Buffers: a tensor and those written in place over it; their size, and the steps that touch
  // them (the graph input before the run, the outputs after it).
  std::vector<std::vector<int64_t>> touches(nt);
  std::vector<int64_t> size(nt, 0);
  auto touch = [&](int32_t t, int64_t step) {
    const int32_t b = S.share[t];
    size[b] = std::max(size[b], S.image_bytes[t] * batch);
    touches[b].push_back(step);
  };
  for (int32_t t : g.inputs) touch(t, -1);
  for (int64_t i = 0; i < end; ++i) {
    for (int32_t t : S.steps[i].in) touch(t, i);
    touch(S.steps[i].out, i);
  }
  for (int32_t t : g.outputs) touch(t, end);
  MemoryPlanner planner;
  std::vector<int32_t> buffer(nt, -1);
  for (size_t b = 0; b < nt; ++b)
    if (!touches[b].empty()) buffer[b] = planner.add_buffer(size[b], touches[b]);
  planner.plan(*S.schedule);

  MemoryPlan plan;
  plan.batch = batch;
  plan.offset.assign(nt, -1);
  plan.bytes.resize(nt);
  for (size_t t = 0; t < nt; ++t) {
    plan.bytes[t] = S.image_bytes[t] * batch;
    if (buffer[S.share[t]] >= 0) plan.offset[t] = planner.offset(buffer[S.share[t]]);
  }
  plan.arena_bytes = planner.arena_size();
  plan.lower_bound = planner.lower_bound();
  return plan;
}
Workspace::Workspace(const Engine& engine, int32_t batch) : state_(std::make_unique<detail::WorkspaceState>()) {
  detail::WorkspaceState& ws = *state_;
  ws.plan = engine.plan(batch);
  ws.arena = k8::AlignedBytes(static_cast<size_t>(ws.plan.arena_bytes));
  ws.scratch_bytes = engine.steps_->scratch_bytes;
  for (int32_t slot = 0; slot < 2; ++slot)
    if (engine.steps_->expanded_bytes[slot] > 0)
      ws.expanded[slot] = k8::AlignedBytes(static_cast<size_t>(engine.steps_->expanded_bytes[slot]));
}
Workspace::~Workspace() = default;
Workspace::Workspace(Workspace&&) noexcept = default;
Workspace& Workspace::operator=(Workspace&&) noexcept = default;
int32_t Workspace::batch() const { return state_->plan.batch; }
const MemoryPlan& Workspace::plan() const { return state_->plan; }

namespace {

// Tasks are tiles of rows x weight blocks, made once per call as even pieces: rows in as few
// pieces as the path's cache-sized chunk allows and, with more than one thread, blocks split too
// until there are about four tasks per thread, a multiple of the threads where the blocks allow
// (a row piece's gather is repeated per block piece), so that layers with few rows still spread
// over the threads. One thread runs a layer in one call: each row chunk is gathered once and
// each weight block streams once per chunk (measured at stage 5, 49 rows per image: TBB's
// automatic split cut the rows in two and gathered them once per block; 0.96x the time of the
// whole network on one thread). Any split gives the same bits: a task computes whole dot products.
void run_conv(const k8::KernelTable& table, const k8::ConvLayer& L, const void* weights, const uint8_t* in,
              const uint8_t* residual, void* out, int32_t batch, detail::WorkspaceState& ws) {
  const int64_t rows = int64_t{batch} * L.oh * L.ow;
  const int64_t chunk = table.chunk_rows(L);
  const int64_t threads = tbb::this_task_arena::max_concurrency();
  int64_t row_pieces = 1, block_pieces = 1;
  if (threads > 1) {
    row_pieces = (rows + chunk - 1) / chunk;
    block_pieces = std::min<int64_t>(L.blocks, (4 * threads + row_pieces - 1) / row_pieces);
    while (row_pieces * block_pieces % threads != 0 && block_pieces < L.blocks) ++block_pieces;  // even shares
  }
  const int64_t pieces = row_pieces * block_pieces;
  auto run = [&](int64_t piece) {
    const int64_t rp = piece / block_pieces, bp = piece % block_pieces;
    k8::AlignedBytes& scratch = ws.scratch.local();
    if (scratch.size() < ws.scratch_bytes) scratch = k8::AlignedBytes(ws.scratch_bytes);
    table.conv(L, weights, in, residual, out, rows * rp / row_pieces, rows * (rp + 1) / row_pieces,
               static_cast<int32_t>(L.blocks * bp / block_pieces), static_cast<int32_t>(L.blocks * (bp + 1) / block_pieces),
               scratch.data());
  };
  if (pieces == 1) return run(0);
  tbb::parallel_for(int64_t{0}, pieces, run, tbb::simple_partitioner());
}

}  // namespace

std::vector<int32_t> Engine::run(Workspace& workspace, std::span<const int32_t> input,
                                 std::vector<double>* step_seconds) const {
  const int64_t in_n = graph_->input().elements();
  std::vector<int32_t> out(static_cast<size_t>(static_cast<int64_t>(input.size()) / in_n * graph_->output().elements()));
  run_into(workspace, input, out, step_seconds);
  return out;
}

// One step of a run (Workspace holds the run's batch and timing).
void Engine::run_step(size_t i, detail::WorkspaceState& ws) const {
  const Graph& g = *graph_;
  const detail::EngineSteps& S = *steps_;
  const MemoryPlan& plan = ws.plan;
  const k8::KernelTable& table = *S.table;
  const int32_t batch = ws.batch;
  uint8_t* arena = reinterpret_cast<uint8_t*>(ws.arena.data());
  auto at = [&](int32_t t) { return arena + plan.offset[t]; };
  const auto t0 = std::chrono::steady_clock::now();
  const Step& st = S.steps[i];
  const uint8_t* src = at(st.in[0]);
  uint8_t* dst = at(st.out);
  const int64_t out_bytes = S.image_bytes[st.out] * batch;
  switch (st.kind) {
    case Kind::Conv: {
      const void* weights = st.conv.weights.data();
      if (st.conv.compact.bits != 0) {  // packed: the whole layer expanded first, then run
        std::byte* buffer = ws.expanded[st.slot].data();
        tbb::parallel_for(tbb::blocked_range<int64_t>(0, st.conv.compact.rows, 64), [&](const tbb::blocked_range<int64_t>& r) {
          table.expand(st.conv, r.begin(), r.end(), buffer);
        });
        weights = buffer;
      }
      run_conv(table, st.conv, weights, src, st.conv.residual ? at(st.in[1]) : nullptr, dst, batch, ws);
      break;
    }
    case Kind::Add:
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, out_bytes, 65536), [&](const tbb::blocked_range<int64_t>& r) {
        table.add(st.add, src + r.begin(), at(st.in[1]) + r.begin(), dst + r.begin(), r.size());
      });
      break;
    case Kind::Copy:
      if (src != dst) std::memcpy(dst, src, static_cast<size_t>(out_bytes));
      break;
    case Kind::ReluS8: table.relu_s8(src, dst, out_bytes); break;
    case Kind::MaxPool:
    case Kind::AveragePool: {  // over images and pieces of their output rows (one image: its rows over the threads)
      const int64_t in_img = S.image_bytes[st.in[0]], out_img = S.image_bytes[st.out];
      const auto fn = st.kind == Kind::MaxPool ? table.max_pool : table.average_pool;
      tbb::parallel_for(tbb::blocked_range2d<int32_t>(0, batch, 1, 0, st.pool.oh, 4), [&](const tbb::blocked_range2d<int32_t>& r) {
        for (int32_t im = r.rows().begin(); im < r.rows().end(); ++im)
          fn(st.pool, src + im * in_img, dst + im * out_img, r.cols().begin(), r.cols().end());
      });
      break;
    }
    case Kind::GlobalAveragePool: {
      const int64_t in_img = S.image_bytes[st.in[0]], out_img = S.image_bytes[st.out];
      tbb::parallel_for(0, batch, [&](int32_t im) { table.global_average_pool(st.pool, src + im * in_img, dst + im * out_img); });
      break;
    }
    case Kind::FlattenReorder: {
      // NHWC (padded channels) to the [C * H * W] order of the reference.
      const Tensor& t = g.tensors[st.in[0]];
      const int32_t c_n = t.shape[0], cs = k8::channel_stride(c_n);
      const int64_t plane = int64_t{shape3(t).h} * shape3(t).w, in_img = S.image_bytes[st.in[0]];
      const int64_t out_img = S.image_bytes[st.out];
      std::memset(dst, 0, static_cast<size_t>(out_bytes));
      for (int64_t im = 0; im < batch; ++im)
        for (int32_t c = 0; c < c_n; ++c)
          for (int64_t p = 0; p < plane; ++p) dst[im * out_img + c * plane + p] = src[im * in_img + p * cs + c];
      break;
    }
  }
  if (ws.step_seconds) (*ws.step_seconds)[static_cast<size_t>(st.node)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Engine::run_into(Workspace& workspace, std::span<const int32_t> input, std::span<int32_t> result,
                      std::vector<double>* step_seconds) const {
  const Graph& g = *graph_;
  const detail::EngineSteps& S = *steps_;
  detail::WorkspaceState& ws = *workspace.state_;
  const MemoryPlan& plan = ws.plan;
  uint8_t* arena = reinterpret_cast<uint8_t*>(ws.arena.data());
  auto at = [&](int32_t t) { return arena + plan.offset[t]; };

  // The input, [N][C][H][W] integers, to NHWC bytes with padded channels 0.
  const Tensor& in_t = g.input();
  const int64_t in_n = in_t.elements();
  // A plan for B images holds any batch up to B: each tensor's region only shrinks.
  const auto batch = static_cast<int32_t>(static_cast<int64_t>(input.size()) / in_n);
  if (static_cast<int64_t>(input.size()) != in_n * batch || batch < 1 || batch > plan.batch)
    fail("cannot run model: {} input values are not 1 to {} images of {} values", input.size(), plan.batch, in_n);
  if (static_cast<int64_t>(result.size()) != graph_->output().elements() * batch)
    fail("cannot run model: room for {} outputs, {} images need {}", result.size(), batch,
         graph_->output().elements() * batch);
  const Range in_r = range_of(in_t.type);
  {
    // Branch-free passes (minmax_element's is not), over the threads.
    const auto [lo, hi] = tbb::parallel_reduce(
        tbb::blocked_range<size_t>(0, input.size(), 65536), std::pair<int32_t, int32_t>{in_r.lo, in_r.hi},
        [&](const tbb::blocked_range<size_t>& r, std::pair<int32_t, int32_t> m) {
          for (size_t j = r.begin(); j < r.end(); ++j) {
            m.first = std::min(m.first, input[j]);
            m.second = std::max(m.second, input[j]);
          }
          return m;
        },
        [](std::pair<int32_t, int32_t> x, std::pair<int32_t, int32_t> y) {
          return std::pair<int32_t, int32_t>{std::min(x.first, y.first), std::max(x.second, y.second)};
        });
    if (lo < in_r.lo || hi > in_r.hi)
      fail("cannot run model: input value {} lies outside [{}, {}]", lo < in_r.lo ? lo : hi, in_r.lo, in_r.hi);
    const int32_t c_n = in_t.shape[0], cs = k8::channel_stride(c_n);
    const int64_t plane = int64_t{shape3(in_t).h} * shape3(in_t).w;
    const uint8_t bias = S.input_biased ? 128 : 0;
    uint8_t* dst = at(g.inputs[0]);
    // Padded channels hold 0 (stored biased when the input is). Whole pixels are written as one
    // word when they have 4 channels (3 and a pad: the usual image).
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, batch * plane, 4096), [&](const tbb::blocked_range<int64_t>& r) {
      int64_t im = r.begin() / plane, p = r.begin() % plane;
      for (int64_t i = r.begin(); i < r.end(); ++i, ++p) {
        if (p == plane) p = 0, ++im;
        const int32_t* src = input.data() + im * c_n * plane + p;
        uint8_t* out = dst + i * cs;
        if (cs == 4) {
          uint32_t word = 0;
          for (int32_t c = 0; c < 4; ++c)
            word |= uint32_t{c < c_n ? static_cast<uint8_t>(src[c * plane] + bias) : bias} << (8 * c);
          std::memcpy(out, &word, 4);
          continue;
        }
        for (int32_t c = 0; c < cs; ++c) out[c] = c < c_n ? static_cast<uint8_t>(src[c * plane] + bias) : bias;
      }
    });
  }
  if (step_seconds) step_seconds->assign(g.nodes.size(), 0.0);
  ws.batch = batch;
  ws.step_seconds = step_seconds;
  const bool one_thread = tbb::this_task_arena::max_concurrency() == 1;
  for (const auto& seg : S.schedule->segments()) {
    if (seg.b.empty() || one_thread) {  // in the steps' order
      for (size_t i = 0, ia = 0, ib = 0; i < seg.a.size() + seg.b.size(); ++i)
        run_step(ib == seg.b.size() || (ia < seg.a.size() && seg.a[ia] < seg.b[ib]) ? seg.a[ia++] : seg.b[ib++], ws);
      continue;
    }
    tbb::task_group both;
    both.run([&] {
      for (int32_t st : seg.b) run_step(st, ws);
    });
    for (int32_t st : seg.a) run_step(st, ws);
    both.wait();
  }

  // The first output, back to [N][C][H][W] integers.
  const int32_t o = g.outputs[0];
  const Tensor& out_t = g.tensors[o];
  const int32_t c_n = out_t.shape[0];
  const int64_t plane = int64_t{shape3(out_t).h} * shape3(out_t).w;
  const uint8_t* src = at(o);
  const bool int32 = out_t.type == ElementType::Int32, s8 = is_signed(out_t);
  const int32_t cs = k8::channel_stride(c_n);
  // Images x blocks of channels.
  tbb::parallel_for(tbb::blocked_range2d<int64_t, int32_t>(0, batch, 1, 0, c_n, 256),
                    [&](const tbb::blocked_range2d<int64_t, int32_t>& r) {
                      for (int64_t im = r.rows().begin(); im < r.rows().end(); ++im)
                        for (int32_t c = r.cols().begin(); c < r.cols().end(); ++c) {
                          int32_t* dst = result.data() + (im * c_n + c) * plane;
                          for (int64_t p = 0; p < plane; ++p) {
                            int32_t v;
                            if (int32) {
                              std::memcpy(&v, src + ((im * plane + p) * c_n + c) * 4, 4);
                            } else {
                              const uint8_t byte = src[(im * plane + p) * cs + c];
                              v = s8 ? int32_t{static_cast<int8_t>(byte)} : int32_t{byte};
                            }
                            dst[p] = v;
                          }
                        }
                    });
}

std::vector<float> Engine::classify(Workspace& workspace, std::span<const Image> images) const {
  return dequantize(run(workspace, quantize_images(*graph_, images)), graph_->output().exponent);
}

}  // namespace trit
