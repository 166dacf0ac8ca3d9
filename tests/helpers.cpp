#include "helpers.h"

#include <fmt/format.h>

namespace trit::test {

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

}  // namespace trit::test
