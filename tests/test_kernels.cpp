// The fast integer kernels (kernels/int8/, through trit::Engine) against the integer reference
// (IntExecutor), bit for bit, on every path this CPU runs.
#include <doctest/doctest.h>

#include <tbb/task_arena.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>

#include "float_ref.h"
#include "helpers.h"
#include "int8/table.h"
#if defined(__x86_64__)
#include "x86/expand_quads.h"
#endif
#include "engine.h"
#include "trit/error.h"
#include "int_executor.h"
#include "quantized_io.h"
#include "trit/weight_codes.h"

using namespace trit;

namespace {

std::vector<std::string> paths() {
  std::vector<std::string> out;
  for (k8::Isa isa : {k8::Isa::Ref, k8::Isa::Avx2, k8::Isa::Avx512Vnni, k8::Isa::Amx}) {
    if (k8::isa_supported(isa)) out.push_back(k8::to_string(isa));
    else MESSAGE("not run: this CPU cannot run the " << std::string(k8::to_string(isa)) << " path");
  }
  return out;
}

// Layers the packed engines kept packed, per path (the sweep checks that packing happens).
std::map<std::string, int> packed_layers;

// The reference's output and each path's, expanded and packed, for one graph and one input.
void check_paths(const std::shared_ptr<const Graph>& g, int32_t batch, std::mt19937& rng) {
  const auto input = test::random_input(g->input(), batch, rng);
  const auto want = IntExecutor(g).run(input, batch);
  for (const std::string& isa : paths())
   for (const bool packed : {false, true}) {
    CAPTURE(isa);
    CAPTURE(packed);
    const Engine engine(g, isa, packed);
    if (packed && engine.expansion_bytes() > 0) ++packed_layers[isa];
    if (!packed) CHECK(engine.expansion_bytes() == 0);
    Workspace ws(engine, batch);
    const auto got = engine.run(ws, input);
    REQUIRE(got.size() == want.size());
    for (size_t j = 0; j < want.size(); ++j)
      if (got[j] != want[j]) FAIL("output " << j << ": the reference gives " << want[j] << ", " << isa << " gives " << got[j]);
    // A second run on the same workspace gives the same bits.
    CHECK(engine.run(ws, input) == want);
  }
}

// One convolution (or fully connected layer) from c to o channels on an h x w input, with the
// given types, encodings and exponents; with `residual`, its output feeds an add with a second
// layer's (a projection shortcut), which the engine fuses into one of the two layers' epilogues
// (the add's first operand): the operands' order, types and exponents vary with `variant`, so
// that the shifts cover the 16-bit fast form (la, lb <= 6, s in [0, 15]) and the general one.
struct LayerCase {
  int32_t c, o, h, w;
  Window window;
  bool fc;
  ElementType in_type, out_type;
  bool relu;
  WeightEncoding encoding;
  int32_t cluster;
  ClusterShape shape;
  int32_t fi, fo;
  bool residual;
  int variant;
};

std::shared_ptr<const Graph> layer_graph(const LayerCase& lc, std::mt19937& rng) {
  const int32_t c = lc.c, o = lc.o, h = lc.h, w = lc.w, fi = lc.fi, fo = lc.fo, trial = lc.variant;
  const bool fc = lc.fc;
  const Window used = lc.window;
  const ElementType it = lc.in_type, ot = lc.out_type;
  auto g = std::make_shared<Graph>();
  g->tensors.push_back(fc ? test::tensor("in", {c}, it, fi) : test::tensor("in", {c, h, w}, it, fi));
  g->tensors.push_back(fc ? test::tensor("out", {o}, ot, fo) : test::tensor("out", {o, used.out_h(h), used.out_w(w)}, ot, fo));
  Node n;
  n.name = "layer";
  n.op = fc ? OpCode::FullyConnected : OpCode::Conv;
  n.inputs = {0};
  n.outputs = {1};
  n.window = used;
  n.activation = lc.relu ? Activation::Relu : Activation::None;
  test::random_weights(n, lc.encoding, lc.cluster, lc.shape, {o, c, used.kernel_h, used.kernel_w}, rng);
  g->nodes.push_back(std::move(n));
  g->inputs = {0};
  g->outputs = {1};
  if (lc.residual) {
    const std::vector<int32_t> shape = g->tensors[1].shape;  // a copy: the pushes below move the tensors
    const ElementType st = trial % 3 ? ElementType::Int8 : ElementType::UInt8;
    const int32_t fs = trial % 11 - 1, fa = std::min(fo, fs) + 1 - trial % 4;
    g->tensors.push_back(test::tensor("shortcut", shape, st, fs));
    g->tensors.push_back(test::tensor("sum", shape, trial % 4 ? ElementType::UInt8 : ElementType::Int8, fa));
    Node b;
    b.name = "projection";
    b.op = g->nodes[0].op;
    b.inputs = {0};
    b.outputs = {2};
    b.window = used;
    b.activation = st == ElementType::UInt8 ? Activation::Relu : Activation::None;
    test::random_weights(b, WeightEncoding::Int8PerChannel, 1, ClusterShape::Kernels, {o, c, used.kernel_h, used.kernel_w},
                         rng);
    g->nodes.push_back(std::move(b));
    Node a;
    a.name = "add";
    a.op = OpCode::Add;
    a.inputs = trial % 4 < 2 ? std::vector<int32_t>{1, 2} : std::vector<int32_t>{2, 1};
    a.outputs = {3};
    a.activation = g->tensors[3].type == ElementType::UInt8 ? Activation::Relu : Activation::None;
    g->nodes.push_back(std::move(a));
    g->outputs = {3};
  }
  return g;
}

}  // namespace

TEST_CASE("every kernel path equals the integer reference on a sweep of layer shapes") {
  // Every pair of input and output channel counts at and around the tiles' edges: the VNNI quad
  // of input channels (4), the output blocks (16 and 64 channels), the 6-row and 4-row micro
  // tiles (widths 1 to 13). Windows, strides, pads, types, encodings and cluster sizes cycle
  // through every kind the models use, deterministically.
  std::mt19937 rng(2024);  // weights and inputs only
  const std::vector<int32_t> edges{1, 2, 3, 4, 5, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65};
  const std::vector<Window> windows{
      {1, 1, 1, 1, 0, 0, 0, 0}, {3, 3, 1, 1, 1, 1, 1, 1}, {1, 1, 2, 2, 0, 0, 0, 0}, {3, 3, 2, 2, 0, 0, 1, 1},
      {3, 3, 2, 2, 1, 1, 1, 1}, {7, 7, 2, 2, 3, 3, 3, 3}, {3, 3, 1, 1, 0, 2, 1, 0}, {3, 3, 1, 1, 0, 0, 0, 0},
      {2, 5, 1, 3, 0, 1, 0, 0}};
  const std::vector<ElementType> in_types{ElementType::UInt8, ElementType::Int8};
  const std::vector<ElementType> out_types{ElementType::UInt8, ElementType::Int8, ElementType::Int32};
  const std::vector<WeightEncoding> encodings{WeightEncoding::Int8PerChannel, WeightEncoding::TernaryClustered,
                                              WeightEncoding::Int4Clustered};
  const std::vector<int32_t> clusters{1, 2, 3, 4, 16};
  int trial = 0, fused_adds = 0;
  for (const int32_t c : edges)
    for (const int32_t o : edges) {
      ++trial;
      const bool fc = trial % 10 == 9;
      const Window used = fc ? Window{} : windows[trial % windows.size()];
      // Heights from the kernel's up; widths 1 to 13 past the kernel, so that rows of 6 (and 4)
      // pixels fall wholly inside the input (read in place) and partly outside (gathered).
      const int32_t h = fc ? 1 : used.kernel_h + trial % 5;
      const int32_t w = fc ? 1 : used.kernel_w + trial % 13;
      if (used.out_h(h) < 1 || used.out_w(w) < 1) continue;
      const ElementType it = in_types[trial % 2], ot = out_types[trial / 2 % 3];
      const bool relu = ot == ElementType::UInt8 || (ot == ElementType::Int8 && trial % 3 == 0);
      const WeightEncoding enc = encodings[trial / 3 % 3];
      const int32_t cluster = clusters[trial / 9 % clusters.size()];
      const ClusterShape shape = trial / 5 % 2 ? ClusterShape::Kernels : ClusterShape::Channels;
      // Output exponents that make shifts from -3 (left shifts) to about 20.
      const int32_t fi = trial % 7, fo = trial % 19 - 2;
      // Every other 8-bit layer feeds a fused add.
      const bool residual = ot != ElementType::Int32 && trial % 2 == 0;
      LayerCase lc{c, o, h, w, used, fc, it, ot, relu, enc, cluster, shape, fi, fo, residual, trial};
      const auto g = layer_graph(lc, rng);
      fused_adds += residual;
      CAPTURE(trial);
      CAPTURE(residual);
      CAPTURE(c);
      CAPTURE(o);
      CAPTURE(h);
      CAPTURE(w);
      CAPTURE(used.kernel_h);
      CAPTURE(used.stride_h);
      check_paths(g, 1 + trial % 3, rng);
    }
  CHECK(trial == 225);
  CHECK(fused_adds >= 60);
  // Packed where clusters never split a group of the layout (the ref path never packs: its rows
  // of one channel would need an index per 4 weights).
  CHECK(packed_layers["ref"] == 0);
  if (k8::isa_supported(k8::Isa::Avx2)) CHECK(packed_layers["avx2"] >= 40);
  if (k8::isa_supported(k8::Isa::Avx512Vnni)) CHECK(packed_layers["avx512vnni"] >= 40);
  if (k8::isa_supported(k8::Isa::Amx)) CHECK(packed_layers["amx"] == packed_layers["avx512vnni"]);
  MESSAGE("layers kept packed: avx2 " << packed_layers["avx2"] << ", avx512vnni " << packed_layers["avx512vnni"]
                                      << ", amx " << packed_layers["amx"]);
}

TEST_CASE("every kernel path equals the integer reference on layers with thousands of input channels") {
  // k = KH * KW * cs above 4096: the avx512vnni path runs these blocks over slices of k, keeping
  // the accumulators between slices (x86/avx512vnni/int8.cpp). Tiles read in place (3x3 without
  // padding on a wide map, 1x1) and gathered (padded, strided, signed input), output blocks
  // whole and partial (130 channels: 64 + 64 + 2), every output type, a fused add, and batches
  // whose rows make one chunk and several.
  std::mt19937 rng(4608);
  struct Shape {
    int32_t c, h, w;
    Window window;
  };
  const std::vector<Shape> shapes{{516, 7, 7, {3, 3, 1, 1, 1, 1, 1, 1}},  {460, 16, 16, {3, 3, 1, 1, 0, 0, 0, 0}},
                                  {520, 9, 9, {3, 3, 2, 2, 1, 1, 1, 1}},  {4100, 5, 5, {1, 1, 1, 1, 0, 0, 0, 0}},
                                  {2050, 3, 14, {1, 3, 1, 1, 0, 0, 1, 1}}};
  const std::vector<ElementType> out_types{ElementType::UInt8, ElementType::Int8, ElementType::Int32};
  int variant = 0;
  for (const Shape& sh : shapes)
    for (const ElementType ot : out_types) {
      ++variant;
      const ElementType it = variant % 2 ? ElementType::UInt8 : ElementType::Int8;
      const WeightEncoding enc = variant % 3 == 0 ? WeightEncoding::Int8PerChannel : WeightEncoding::TernaryClustered;
      const bool residual = ot != ElementType::Int32 && variant % 2 == 1;
      LayerCase lc{sh.c, 130, sh.h, sh.w, sh.window, false, it, ot, ot == ElementType::UInt8, enc, 4, ClusterShape::Kernels,
                   variant % 5, 8 + variant % 7, residual, variant};
      CHECK(int64_t{sh.window.kernel_h} * sh.window.kernel_w * k8::channel_stride(sh.c) > 4096);
      CAPTURE(variant);
      CAPTURE(sh.c);
      check_paths(layer_graph(lc, rng), 1 + variant % 3, rng);
    }
}

TEST_CASE("every kernel path equals the integer reference on layers whose taps come in whole 64-byte rows") {
  // The amx path tiles layers with 64-channel blocks whose kernel rows are whole 64-byte tile
  // rows (kw * cs a multiple of 64) in calls of 32 rows or more (x86/amx/int8.cpp; blocks above
  // 256 KB in larger chunks): here 1x1, 3x3 and 1x4 windows on 64 to 576 channels, strided and
  // padded, so that 16-row input tiles are read in place, gathered, and partial (maps 5 to 40
  // wide, batches of 1 to 3, chunks of 32 to 512 rows, several chunks where k is small); output
  // blocks whole and partial (64, 130, 192 channels), every input and output type, fused adds;
  // and layers the amx path leaves to the avx512vnni conv (9 rows an image, a fully connected
  // layer). The engine splits the rows between threads, so which calls are tiled depends on the
  // thread count too; every split gives the reference's bits.
  std::mt19937 rng(1664);
  struct Shape {
    int32_t c, o, h, w;
    Window window;
    bool fc;
  };
  const std::vector<Shape> shapes{
      {256, 64, 20, 40, {1, 1, 1, 1, 0, 0, 0, 0}, false},  {64, 130, 9, 17, {3, 3, 1, 1, 1, 1, 1, 1}, false},
      {128, 192, 14, 14, {3, 3, 2, 2, 1, 1, 1, 1}, false}, {256, 64, 7, 7, {1, 1, 1, 1, 0, 0, 0, 0}, false},
      {192, 130, 11, 33, {3, 3, 1, 1, 0, 0, 0, 0}, false}, {320, 130, 20, 9, {1, 1, 2, 2, 0, 0, 0, 0}, false},
      {64, 64, 6, 19, {1, 4, 1, 1, 0, 0, 1, 2}, false},    {576, 130, 8, 16, {3, 3, 1, 1, 1, 1, 1, 1}, false},
      {64, 64, 3, 3, {3, 3, 1, 1, 1, 1, 1, 1}, false},     {256, 130, 1, 1, {}, true}};
  const std::vector<ElementType> out_types{ElementType::UInt8, ElementType::Int8, ElementType::Int32};
  int variant = 0;
  for (const Shape& sh : shapes)
    for (const ElementType ot : out_types) {
      ++variant;
      const ElementType it = variant % 4 == 3 ? ElementType::Int8 : ElementType::UInt8;
      const WeightEncoding enc = variant % 3 == 0 ? WeightEncoding::Int8PerChannel : WeightEncoding::TernaryClustered;
      const bool residual = ot != ElementType::Int32 && variant % 2 == 1;
      LayerCase lc{sh.c, sh.o, sh.h, sh.w, sh.window, sh.fc, it, ot, ot == ElementType::UInt8, enc, 4, ClusterShape::Kernels,
                   variant % 5, 8 + variant % 7, residual, variant};
      CHECK(int64_t{sh.window.kernel_w} * k8::channel_stride(sh.c) % 64 == 0);
      CAPTURE(variant);
      CAPTURE(sh.c);
      CAPTURE(sh.w);
      const auto g = layer_graph(lc, rng);
      // One thread in every other case: a call then gets all the rows, several chunks of them.
      if (variant % 2 == 0) tbb::task_arena(1).execute([&] { check_paths(g, 1 + variant % 3, rng); });
      else check_paths(g, 1 + variant % 3, rng);
    }
}

TEST_CASE("every kernel path equals the integer reference on adds, pools, ReLU and Flatten") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 24; ++trial) {
    CAPTURE(trial);
    check_paths(test::integer_graph(rng, trial), 1 + trial % 2, rng);
  }
}

TEST_CASE("every path's pools write the rows asked, the same bytes as a whole call") {
  std::mt19937 rng(11);
  const int32_t c = 19, h = 13, w = 9, cs = k8::channel_stride(c);
  std::vector<uint8_t> in(static_cast<size_t>(cs) * h * w);
  for (uint8_t& v : in) v = static_cast<uint8_t>(rng());
  for (const std::string& isa : paths()) {
    CAPTURE(isa);
    const k8::KernelTable& table = k8::table_for(k8::parse_isa(isa.c_str()));
    for (const Window& win : {Window{3, 3, 2, 2, 1, 1, 1, 1}, Window{2, 3, 1, 2, 0, 1, 1, 0}})
      for (const bool is_signed : {false, true})
        for (const bool max : {true, false}) {
          CAPTURE(is_signed);
          CAPTURE(max);
          const k8::PoolParams p{cs, h, w, win.out_h(h), win.out_w(w), win, is_signed, false, 0, 0, is_signed ? -128 : 0,
                                 is_signed ? 127 : 255};
          const auto pool = max ? table.max_pool : table.average_pool;
          const size_t row = static_cast<size_t>(cs) * p.ow;
          std::vector<uint8_t> whole(row * p.oh);
          pool(p, in.data(), whole.data(), 0, p.oh);
          // Each piece writes its rows, as the whole call does, and no other byte.
          for (const auto& [y0, y1] : {std::pair{0, 2}, std::pair{2, 3}, std::pair{3, p.oh}}) {
            std::vector<uint8_t> piece(whole.size(), 0xA5), want(whole.size(), 0xA5);
            std::copy(whole.begin() + y0 * row, whole.begin() + y1 * row, want.begin() + y0 * row);
            pool(p, in.data(), piece.data(), y0, y1);
            CHECK(piece == want);
          }
        }
  }
}

TEST_CASE("TRIT_ISA names a path, and an unknown or unavailable one is refused") {
  CHECK(k8::parse_isa("ref") == k8::Isa::Ref);
  CHECK(k8::parse_isa("avx512vnni") == k8::Isa::Avx512Vnni);
  CHECK(k8::parse_isa("amx") == k8::Isa::Amx);
  CHECK_THROWS_WITH_AS(k8::parse_isa("sse9"), "unknown instruction set 'sse9': expected ref, avx2, avx512vnni or amx",
                       Error);
  const char* old = std::getenv("TRIT_ISA");
  const std::string saved = old ? old : "";
  setenv("TRIT_ISA", "ref", 1);
  CHECK(k8::select_isa() == k8::Isa::Ref);
  setenv("TRIT_ISA", "nonsense", 1);
  CHECK_THROWS_AS(k8::select_isa(), Error);
  if (old) setenv("TRIT_ISA", saved.c_str(), 1);
  else unsetenv("TRIT_ISA");
  for (k8::Isa isa : {k8::Isa::Avx2, k8::Isa::Avx512Vnni, k8::Isa::Amx})
    if (!k8::isa_supported(isa)) CHECK_THROWS_AS(k8::table_for(isa), Error);
}

TEST_CASE("the memory plan keeps tensors that are alive together apart, within 1.2x of its bound") {
  std::mt19937 rng(5);
  // A residual chain: every add can run in place.
  auto g = std::make_shared<Graph>();
  g->tensors.push_back(test::tensor("x", {16, 10, 10}, ElementType::UInt8, 5));
  int32_t prev = 0;
  for (int i = 0; i < 4; ++i) {
    g->tensors.push_back(test::tensor(fmt::format("c{}", i), {16, 10, 10}, ElementType::UInt8, 5));
    g->tensors.push_back(test::tensor(fmt::format("a{}", i), {16, 10, 10}, ElementType::UInt8, 5));
    Node c;
    c.name = fmt::format("conv{}", i);
    c.inputs = {prev};
    c.outputs = {static_cast<int32_t>(g->tensors.size() - 2)};
    c.window = {3, 3, 1, 1, 1, 1, 1, 1};
    c.activation = Activation::Relu;
    test::random_weights(c, WeightEncoding::TernaryClustered, 4, ClusterShape::Kernels, {16, 16, 3, 3}, rng);
    g->nodes.push_back(std::move(c));
    Node a;
    a.name = fmt::format("add{}", i);
    a.op = OpCode::Add;
    a.inputs = {static_cast<int32_t>(g->tensors.size() - 2), prev};
    a.outputs = {static_cast<int32_t>(g->tensors.size() - 1)};
    a.activation = Activation::Relu;
    g->nodes.push_back(std::move(a));
    prev = static_cast<int32_t>(g->tensors.size() - 1);
  }
  g->inputs = {0};
  g->outputs = {prev};
  const Engine engine(g, "ref");
  for (int32_t batch : {1, 3}) {
    const MemoryPlan plan = engine.plan(batch);
    CHECK(plan.arena_bytes >= plan.lower_bound);
    CHECK(plan.arena_bytes <= plan.lower_bound * 12 / 10);
    // Tensors alive at once never overlap: check pairs by the steps that use them.
    const size_t steps = g->nodes.size();
    std::vector<int64_t> first(g->tensors.size(), 0), last(g->tensors.size(), 0);
    for (size_t i = 0; i < steps; ++i) {
      first[g->nodes[i].outputs[0]] = static_cast<int64_t>(i);
      for (int32_t t : g->nodes[i].inputs) last[t] = static_cast<int64_t>(i);
    }
    last[prev] = static_cast<int64_t>(steps);
    // Each add runs inside its convolution's epilogue: the convolution's output is never stored.
    for (size_t t = 0; t < g->tensors.size(); ++t)
      CHECK_MESSAGE((plan.offset[t] < 0) == (g->tensors[t].name[0] == 'c'), g->tensors[t].name);
    for (size_t a = 0; a < g->tensors.size(); ++a)
      for (size_t b = a + 1; b < g->tensors.size(); ++b) {
        if (plan.offset[a] < 0 || plan.offset[b] < 0) continue;
        const bool together = first[a] < last[b] && first[b] < last[a];  // strictly: in place is allowed
        const bool apart = plan.offset[a] + plan.bytes[a] <= plan.offset[b] || plan.offset[b] + plan.bytes[b] <= plan.offset[a];
        if (together) CHECK_MESSAGE(apart, g->tensors[a].name << " and " << g->tensors[b].name << " overlap");
      }
  }
  check_paths(g, 2, rng);
}

TEST_CASE("a projection branch runs beside the main path, and the plan keeps their tensors apart") {
  std::mt19937 rng(9);
  // x -> conv a1 -> conv a2 ; x -> conv b (the projection) ; add(a2, b). In the steps' order a1
  // dies before b is written, so a sequential plan could give them one place; run side by side,
  // they must not share it.
  auto g = std::make_shared<Graph>();
  g->tensors.push_back(test::tensor("x", {8, 12, 12}, ElementType::UInt8, 5));
  g->tensors.push_back(test::tensor("a1", {8, 12, 12}, ElementType::UInt8, 5));
  g->tensors.push_back(test::tensor("a2", {8, 12, 12}, ElementType::Int8, 5));
  g->tensors.push_back(test::tensor("b", {8, 12, 12}, ElementType::Int8, 5));
  g->tensors.push_back(test::tensor("y", {8, 12, 12}, ElementType::UInt8, 4));
  auto conv = [&](const char* name, int32_t in, int32_t out, int32_t k, bool relu) {
    Node n;
    n.name = name;
    n.inputs = {in};
    n.outputs = {out};
    n.window = {k, k, 1, 1, k / 2, k / 2, k / 2, k / 2};
    n.activation = relu ? Activation::Relu : Activation::None;
    test::random_weights(n, WeightEncoding::TernaryClustered, 4, ClusterShape::Kernels, {8, 8, k, k}, rng);
    g->nodes.push_back(std::move(n));
  };
  conv("a1", 0, 1, 3, true);
  conv("a2", 1, 2, 3, false);
  conv("b", 0, 3, 1, false);
  Node add;
  add.name = "add";
  add.op = OpCode::Add;
  add.inputs = {2, 3};
  add.outputs = {4};
  add.activation = Activation::Relu;
  g->nodes.push_back(std::move(add));
  g->inputs = {0};
  g->outputs = {4};
  const Engine engine(g, "ref");
  const MemoryPlan plan = engine.plan(1);
  auto apart = [&](int a, int b) {
    return plan.offset[a] + plan.bytes[a] <= plan.offset[b] || plan.offset[b] + plan.bytes[b] <= plan.offset[a];
  };
  CHECK(apart(1, 3));  // a1 beside b
  CHECK(apart(0, 3));  // x is read by b while a1 and a2 are written
  CHECK(apart(0, 1));
  CHECK(plan.arena_bytes <= plan.lower_bound * 12 / 10 + 64 * 8);
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    tbb::task_arena(threads).execute([&] { check_paths(g, 2, rng); });
  }
}

TEST_CASE("every path's float convolution equals the float reference bit for bit") {
  // Channel counts around the vector widths (8, 16) and blocks (24, 64), windows of every kind,
  // widths that leave interior runs of every length, with and without a ReLU; the output split
  // into channel ranges as the executor splits it.
  std::mt19937 rng(77);
  const std::vector<Window> windows = test::conv_windows();
  int cases = 0;
  for (const int32_t o : {1, 7, 8, 9, 16, 17, 24, 33, 64, 65, 130})
    for (const Window& w : windows) {
      const int32_t c = 1 + (cases % 5), h = w.kernel_h + cases % 7, wd = w.kernel_w + cases % 13;
      const Shape3 is{c, h, wd}, os{o, w.out_h(h), w.out_w(wd)};
      const auto in = test::random_floats(static_cast<size_t>(is.size()), rng);
      const auto weights = test::random_floats(static_cast<size_t>(o) * c * w.kernel_h * w.kernel_w, rng);
      const auto bias = test::random_floats(o, rng);
      const auto packed = ref::pack_conv_weights(weights.data(), o, c, w.kernel_h, w.kernel_w);
      const Activation act = cases % 2 ? Activation::Relu : Activation::None;
      std::vector<float> want(static_cast<size_t>(os.size()));
      ref::conv2d(in.data(), is, packed.data(), bias.data(), w, act, want.data(), os, 0, o);
      for (k8::Isa isa : {k8::Isa::Ref, k8::Isa::Avx2, k8::Isa::Avx512Vnni}) {
        if (!k8::isa_supported(isa)) continue;
        const auto& table = k8::table_for(isa);
        std::vector<float> got(want.size(), -1.0f);
        for (int32_t c0 = 0; c0 < o; c0 += 64) table.conv_f32(in.data(), is, packed.data(), bias.data(), w, act, got.data(), os, c0, std::min(o, c0 + 64));
        CAPTURE(table.name);
        CAPTURE(o);
        CAPTURE(c);
        CAPTURE(h);
        CAPTURE(wd);
        CAPTURE(w.kernel_h);
        CAPTURE(w.stride_h);
        REQUIRE(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
      }
      ++cases;
    }
  CHECK(cases == 77);
}

TEST_CASE("every path's expansion of packed weights writes code times scale, element by element") {
  // Hand-made packed weights (layer.h, CompactWeights): random codes and scale rows, expanded
  // by each path's table entry, against the definition. The ref entry is the portable code the
  // avx512vnni path compiles too (int8, quads), so this runs it on any CPU.
  std::mt19937 rng(12);
  struct Expander {
    std::string name;
    void (*expand)(const k8::ConvLayer&, int64_t, int64_t, void*);
    int32_t group, elem_bytes;
  };
  std::vector<Expander> expanders;
  for (k8::Isa isa : {k8::Isa::Ref, k8::Isa::Avx2, k8::Isa::Avx512Vnni})
    if (k8::isa_supported(isa)) {
      const k8::KernelTable& table = k8::table_for(isa);
      expanders.push_back({table.name, table.expand, table.group, isa == k8::Isa::Avx2 ? 2 : 1});
    }
#if defined(__x86_64__)
  // The avx512vnni path's AVX2 code, compiled into the avx2 unit too, so that it runs here.
  if (k8::isa_supported(k8::Isa::Avx2)) expanders.push_back({"avx2_expand_quads", k8::avx2_expand_quads, 4, 1});
#endif
  for (const Expander& x : expanders) {
    for (const int32_t bits : {2, 4}) {
      CAPTURE(x.name);
      CAPTURE(bits);
      k8::ConvLayer L;
      k8::CompactWeights& c = L.compact;
      c.bits = bits;
      c.nr = x.group == 4 ? 48 : 16;  // (the VNNI blocks hold 16 to 64 channels)
      c.group = x.group;
      c.elem_bytes = x.elem_bytes;
      c.rows = 9;
      const int32_t row_n = c.nr * c.group, max_scale = bits == 2 ? 127 : 18;
      std::vector<int32_t> codes(static_cast<size_t>(c.rows * row_n));
      c.codes.assign(codes.size() * bits / 8, 0);
      for (size_t e = 0; e < codes.size(); ++e) {
        codes[e] = bits == 2 ? static_cast<int32_t>(rng() % 3) - 1 : static_cast<int32_t>(rng() % 15) - 7;
        const uint32_t field = bits == 2 ? (codes[e] > 0 ? 1u : codes[e] < 0 ? 2u : 0u) : static_cast<uint32_t>(codes[e]) & 15u;
        c.codes[e * bits / 8] |= static_cast<uint8_t>(field << (e * bits % 8));
      }
      for (int i = 0; i < 3 * c.nr; ++i) c.scale_rows.push_back(static_cast<uint8_t>(1 + rng() % max_scale));
      for (int64_t r = 0; r < c.rows; ++r) c.row_scale.push_back(static_cast<uint32_t>(rng() % 3));
      k8::AlignedBytes out(static_cast<size_t>(c.expanded_bytes()));
      std::memset(out.data(), 0x55, out.size());
      x.expand(L, 0, 4, out.data());  // two calls, as threads split rows
      x.expand(L, 4, c.rows, out.data());
      for (int64_t r = 0; r < c.rows; ++r)
        for (int32_t e = 0; e < row_n; ++e) {
          const int64_t at = r * row_n + e;
          const int32_t want = codes[static_cast<size_t>(at)] * c.scale_rows[c.row_scale[r] * c.nr + e / c.group];
          const int32_t got = c.elem_bytes == 2 ? reinterpret_cast<const int16_t*>(out.data())[at]
                                                : reinterpret_cast<const int8_t*>(out.data())[at];
          if (got != want) FAIL("row " << r << ", element " << e << ": " << got << " instead of " << want);
        }
    }
  }
}
