#include "helpers.h"

#include <fmt/format.h>

#include "trit/weight_codes.h"

namespace trit::test {

// (Over 100 lines: one node after another, as the graph reads; split, the graph's shape would be
// harder to see.)
Graph tiny_graph(uint32_t seed) {
  std::mt19937 rng(seed);
  Graph g;
  auto tensor = [&](const std::string& name, std::vector<int32_t> shape) {
    g.tensors.push_back({name, std::move(shape)});
    return static_cast<int32_t>(g.tensors.size() - 1);
  };
  auto layer = [&](Node n, int32_t o, int32_t i, int32_t kh, int32_t kw) {
    n.weights.shape = {o, i, kh, kw};
    n.weights.codes = Blob::from_vector(random_floats(static_cast<size_t>(o) * i * kh * kw, rng));
    n.bias = Blob::from_vector(random_floats(o, rng));
    return n;
  };
  const int32_t x = tensor("input", {3, 9, 8});
  g.inputs = {x};

  Node conv;
  conv.name = "conv1";
  conv.op = OpCode::Conv;
  conv.window = {3, 3, 1, 1, 1, 0, 0, 2};
  conv.activation = Activation::Relu;
  conv.inputs = {x};
  conv.outputs = {tensor("conv1", {})};
  g.tensors.back().shape = {6, conv.window.out_h(9), conv.window.out_w(8)};
  g.nodes.push_back(layer(conv, 6, 3, 3, 3));

  Node pool;
  pool.name = "maxpool";
  pool.op = OpCode::MaxPool;
  pool.window = {2, 2, 2, 2, 0, 0, 1, 1};
  pool.inputs = {g.nodes.back().outputs[0]};
  const auto& cs = g.tensors[pool.inputs[0]].shape;
  pool.outputs = {tensor("maxpool", {6, pool.window.out_h(cs[1]), pool.window.out_w(cs[2])})};
  g.nodes.push_back(pool);

  Node avg;
  avg.name = "avgpool";
  avg.op = OpCode::AveragePool;
  avg.window = {3, 3, 1, 1, 1, 1, 1, 1};
  avg.count_include_pad = true;
  avg.inputs = {g.nodes.back().outputs[0]};
  const auto ps = g.tensors[avg.inputs[0]].shape;
  avg.outputs = {tensor("avgpool", {6, avg.window.out_h(ps[1]), avg.window.out_w(ps[2])})};
  g.nodes.push_back(avg);

  Node conv2;
  conv2.name = "conv2";
  conv2.op = OpCode::Conv;
  conv2.window = {1, 1, 2, 2, 0, 0, 0, 0};
  conv2.inputs = {g.nodes.back().outputs[0]};
  const auto as = g.tensors[conv2.inputs[0]].shape;
  conv2.outputs = {tensor("conv2", {5, conv2.window.out_h(as[1]), conv2.window.out_w(as[2])})};
  g.nodes.push_back(layer(conv2, 5, 6, 1, 1));

  const int32_t c2 = g.nodes.back().outputs[0];
  Node add;
  add.name = "add";
  add.op = OpCode::Add;
  add.activation = Activation::Relu;
  add.inputs = {c2, c2};
  add.outputs = {tensor("add", g.tensors[c2].shape)};
  g.nodes.push_back(add);

  Node relu;
  relu.name = "relu";
  relu.op = OpCode::Relu;
  relu.inputs = {g.nodes.back().outputs[0]};
  relu.outputs = {tensor("relu", g.tensors[c2].shape)};
  g.nodes.push_back(relu);

  Node gap;
  gap.name = "gap";
  gap.op = OpCode::GlobalAveragePool;
  gap.inputs = {g.nodes.back().outputs[0]};
  gap.outputs = {tensor("gap", {5, 1, 1})};
  g.nodes.push_back(gap);

  Node flat;
  flat.name = "flatten";
  flat.op = OpCode::Flatten;
  flat.inputs = {g.nodes.back().outputs[0]};
  flat.outputs = {tensor("flatten", {5})};
  g.nodes.push_back(flat);

  Node fc;
  fc.name = "fc";
  fc.op = OpCode::FullyConnected;
  fc.inputs = {g.nodes.back().outputs[0]};
  fc.outputs = {tensor("logits", {10})};
  g.nodes.push_back(layer(fc, 10, 5, 1, 1));
  g.outputs = {g.nodes.back().outputs[0]};

  g.metadata.mean = {1.0f, 2.0f, 3.0f};
  g.metadata.scale = {4.0f, 5.0f, 6.0f};
  g.metadata.channel_order = ChannelOrder::BGR;
  g.metadata.resize_shorter = 12;
  for (int i = 0; i < 10; ++i) g.metadata.labels.push_back({fmt::format("n{:08d}", i), fmt::format("class {}", i)});
  g.metadata.source = "tiny";
  g.metadata.converter_version = "test";
  g.metadata.converter_options = "--none";
  return g;
}

Tensor tensor(std::string name, std::vector<int32_t> shape, ElementType type, int32_t exponent) {
  return Tensor{std::move(name), std::move(shape), type, exponent};
}

// A layer's integer weights, random codes and scales of an encoding, as a file holds them.
void random_weights(Node& n, WeightEncoding enc, int32_t cluster, ClusterShape shape, std::array<int32_t, 4> s,
                    std::mt19937& rng) {
  Weights& w = n.weights;
  w.encoding = enc;
  w.shape = s;
  w.cluster_size = enc == WeightEncoding::Int8PerChannel ? 0 : cluster;
  w.cluster_shape = shape;
  std::uniform_int_distribution<int> code(-max_code(enc), max_code(enc));
  std::vector<int8_t> codes(static_cast<size_t>(w.count()));
  for (auto& c : codes) c = static_cast<int8_t>(code(rng));
  w.codes = Blob::from_vector(pack_codes(enc, codes));
  std::uniform_int_distribution<int> mant(1, max_cluster_scale(enc));
  std::vector<uint8_t> scales(static_cast<size_t>(cluster_count(w)));
  for (auto& m : scales) m = static_cast<uint8_t>(mant(rng));
  w.scales = Blob::from_vector(std::move(scales));
  std::uniform_int_distribution<int> e(4, 9);
  std::vector<int8_t> exps(s[0]);
  for (auto& x : exps) x = static_cast<int8_t>(e(rng));
  w.scale_exponents = Blob::from_vector(std::move(exps));
  std::uniform_int_distribution<int32_t> b(-(1 << 20), 1 << 20);
  std::vector<int32_t> bias(s[0]);
  for (auto& x : bias) x = b(rng);
  n.bias = Blob::from_vector(std::move(bias));
}

std::vector<int32_t> random_input(const Tensor& t, int32_t batch, std::mt19937& rng) {
  const Range r = range_of(t.type);
  std::uniform_int_distribution<int32_t> d(r.lo, r.hi);
  std::vector<int32_t> v(static_cast<size_t>(t.elements() * batch));
  for (auto& x : v) x = d(rng);
  return v;
}


std::shared_ptr<Graph> integer_graph(std::mt19937& rng, int variant) {
  const int trial = variant;
    auto exp = [&](int lo, int hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(rng); };
    const int32_t c = trial % 2 ? 6 : 5;
    const bool flat_spatial = trial % 4 == 3;  // Flatten of a 2x2 map instead of the pooled vector
    auto g = std::make_shared<Graph>();
    auto& t = g->tensors;
    const ElementType in_type = trial % 3 ? ElementType::Int8 : ElementType::UInt8;
    t.push_back(tensor("x", {3, 11, 9}, in_type, exp(4, 7)));                          // 0
    t.push_back(tensor("a", {c, 11, 9}, ElementType::UInt8, exp(3, 6)));                // 1 conv 3x3 ReLU
    t.push_back(tensor("p", {c, 6, 5}, ElementType::UInt8, t[1].exponent));             // 2 max pool 3x3 s2
    t.push_back(tensor("q", {c, 6, 5}, ElementType::UInt8, exp(3, 7)));                 // 3 average pool 3x3
    t.push_back(tensor("b", {c, 6, 5}, ElementType::Int8, exp(3, 7)));                  // 4 conv 1x1, s8
    t.push_back(tensor("r", {c, 6, 5}, ElementType::UInt8, t[4].exponent));             // 5 ReLU of s8
    t.push_back(tensor("s", {c, 6, 5}, ElementType::UInt8, exp(2, 6)));                 // 6 add + ReLU
    t.push_back(tensor("d", {c, 6, 5}, ElementType::Int8, exp(2, 6)));                  // 7 add, s8
    t.push_back(tensor("g", {c, 1, 1}, ElementType::Int8, exp(2, 8)));                  // 8 global average
    const Window pool3{3, 3, 2, 2, 1, 1, 1, 1}, avg3{3, 3, 1, 1, 1, 1, 1, 1};
    auto node = [&](OpCode op, std::vector<int32_t> in, int32_t out) {
      Node n;
      n.name = fmt::format("n{}", g->nodes.size());
      n.op = op;
      n.inputs = std::move(in);
      n.outputs = {out};
      g->nodes.push_back(std::move(n));
      return &g->nodes.back();
    };
    Node* conv = node(OpCode::Conv, {0}, 1);
    conv->window = {3, 3, 1, 1, 1, 1, 1, 1};
    conv->activation = Activation::Relu;
    random_weights(*conv, WeightEncoding::TernaryClustered, 3, ClusterShape::Kernels, {c, 3, 3, 3}, rng);
    node(OpCode::MaxPool, {1}, 2)->window = pool3;
    Node* avg = node(OpCode::AveragePool, {2}, 3);
    avg->window = avg3;
    avg->count_include_pad = trial % 2 == 0;
    random_weights(*node(OpCode::Conv, {3}, 4), WeightEncoding::Int8PerChannel, 0, ClusterShape::Kernels, {c, c, 1, 1}, rng);
    node(OpCode::Relu, {4}, 5);
    node(OpCode::Add, {5, 3}, 6)->activation = Activation::Relu;
    node(OpCode::Add, {6, 4}, 7);
    int32_t fc_in;
    if (flat_spatial) {
      t.push_back(tensor("f", {c * 30}, ElementType::Int8, t[7].exponent));  // 9 Flatten of [c, 6, 5]
      node(OpCode::Flatten, {7}, 9);
      fc_in = c * 30;
    } else {
      node(OpCode::GlobalAveragePool, {7}, 8);
      t.push_back(tensor("f", {c}, ElementType::Int8, t[8].exponent));  // 9
      node(OpCode::Flatten, {8}, 9);
      fc_in = c;
    }
    t.push_back(tensor("logits", {7}, ElementType::Int32, exp(4, 10)));  // 10
    random_weights(*node(OpCode::FullyConnected, {9}, 10), WeightEncoding::Int4Clustered, 4, ClusterShape::Channels,
                   {7, fc_in, 1, 1}, rng);
    g->inputs = {0};
    g->outputs = {10};
  g->metadata.mean = {120, 110, 100};
  g->metadata.scale = {60, 60, 60};
  return g;
}

}  // namespace trit::test
