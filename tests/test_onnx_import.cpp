// The ONNX importer on small graphs built here, with the protobuf API.
#include <doctest/doctest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <memory>

#include "helpers.h"
#include "onnx_import.h"
#include "trit/error.h"
#include "float_executor.h"
#include "trit/model_file.h"

using namespace trit;

namespace {

// A minimal ONNX graph builder: input [N, C, H, W], nodes, float initializers.
struct OnnxGraph {
  onnx::ModelProto model;
  onnx::GraphProto* g = model.mutable_graph();

  OnnxGraph(int64_t c, int64_t h, int64_t w) {
    model.set_ir_version(7);
    model.add_opset_import()->set_version(13);
    auto* in = g->add_input();
    in->set_name("x");
    auto* t = in->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_param("N");
    for (int64_t d : {c, h, w}) t->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::NodeProto* node(const std::string& op, std::vector<std::string> inputs, const std::string& out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(out);
    for (auto& i : inputs) n->add_input(i);
    n->add_output(out);
    return n;
  }
  void init(const std::string& name, std::vector<int64_t> dims, const std::vector<float>& values) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  }
  void init_i64(const std::string& name, const std::vector<int64_t>& values) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
  }
  void output(const std::string& name) { g->add_output()->set_name(name); }
  Graph import(ImportStats* stats = nullptr) const {
    return import_onnx_bytes(model.SerializeAsString(), "test.onnx", stats);
  }
  std::string error() const {
    try {
      import();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

void ints(onnx::NodeProto* n, const std::string& key, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void integer(onnx::NodeProto* n, const std::string& key, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void real(onnx::NodeProto* n, const std::string& key, float v) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void text(onnx::NodeProto* n, const std::string& key, const std::string& v) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

std::vector<float> run(const Graph& g, const std::vector<float>& x) {
  auto shared = std::make_shared<const Graph>(load_model_bytes(serialize_model(g), "roundtrip"));
  return FloatExecutor(shared).run(x, 1);
}

}  // namespace

TEST_CASE("Conv + BatchNormalization + Relu become one Conv with folded weights and a fused ReLU") {
  OnnxGraph o(1, 3, 3);
  o.init("w", {2, 1, 2, 2}, {1, 2, 3, 4, -1, 0, 0, 1});
  o.init("b", {2}, {0.5f, -1.0f});
  auto* c = o.node("Conv", {"x", "w", "b"}, "c");
  ints(c, "pads", {1, 0, 0, 1});  // top, left, bottom, right
  o.init("gamma", {2}, {2.0f, 0.5f});
  o.init("beta", {2}, {1.0f, 0.0f});
  o.init("mean", {2}, {0.5f, 1.0f});
  o.init("var", {2}, {3.0f, 0.0f});
  auto* bn = o.node("BatchNormalization", {"c", "gamma", "beta", "mean", "var"}, "bn");
  real(bn, "epsilon", 1.0f);
  o.node("Relu", {"bn"}, "y");
  o.output("y");
  ImportStats stats;
  const Graph g = o.import(&stats);
  CHECK(stats.folded_batch_norms == 1);
  CHECK(stats.fused_relus == 1);
  REQUIRE(g.nodes.size() == 1);
  // What the batch norm remembers of its data, on the folded output: mean beta, deviation
  // |gamma| sqrt(var / (var + eps)).
  REQUIRE(stats.batch_norms.size() == 1);
  CHECK(stats.batch_norms[0].node == 0);
  CHECK(stats.batch_norms[0].mean == std::vector<float>{1.0f, 0.0f});
  CHECK(stats.batch_norms[0].stddev[0] == doctest::Approx(std::sqrt(3.0)));
  CHECK(stats.batch_norms[0].stddev[1] == 0.0f);
  const Node& n = g.nodes[0];
  CHECK(n.activation == Activation::Relu);
  CHECK(n.window.pad_top == 1);
  CHECK(n.window.pad_right == 1);
  CHECK(g.tensors[n.outputs[0]].name == "y");
  // Channel 0: k = 2 / sqrt(4) = 1; channel 1: k = 0.5 / sqrt(1) = 0.5.
  CHECK(n.weights.codes.as<float>()[0] == 1.0f);
  CHECK(n.weights.codes.as<float>()[4] == -0.5f);
  CHECK(n.bias.as<float>()[0] == 1.0f);    // (0.5 - 0.5) * 1 + 1
  CHECK(n.bias.as<float>()[1] == -1.0f);   // (-1 - 1) * 0.5 + 0
  // Channel 0 is the hand-computed asymmetric-pad convolution (+ 0.5 bias - 0.5 mean + 1 beta);
  // channel 1 = relu(0.5 * (-x[y-1][x] + x[y][x+1]) - 1), zero outside the image.
  const std::vector<float> x{1, 2, 3, 4, 5, 6, 7, 8, 9};
  const auto out = run(g, x);
  CHECK(std::vector<float>(out.begin(), out.begin() + 9) ==
        std::vector<float>{12, 19, 10, 38, 48, 22, 68, 78, 34});
  CHECK(std::vector<float>(out.begin() + 9, out.end()) == std::vector<float>{0, 0.5f, 0, 1, 1, 0, 1, 1, 0});
}

TEST_CASE("the preprocessing in metadata_props becomes the model metadata, and bad values are named") {
  auto graph = [](const std::vector<std::pair<std::string, std::string>>& props) {
    OnnxGraph o(3, 4, 4);
    o.init("w", {2, 3, 1, 1}, {1, 2, 3, 4, 5, 6});
    o.node("Conv", {"x", "w"}, "y");
    o.output("y");
    for (const auto& [k, v] : props) {
      auto* p = o.model.add_metadata_props();
      p->set_key(k);
      p->set_value(v);
    }
    return o;
  };
  ImportStats stats;
  const Graph plain = graph({{"author", "someone"}}).import(&stats);
  CHECK_FALSE(stats.preprocessing);
  CHECK(plain.metadata.mean == std::vector<float>{0, 0, 0});
  CHECK(plain.metadata.channel_order == ChannelOrder::RGB);
  const Graph g = graph({{"trit.channel_order", "BGR"}, {"trit.mean", "103.939,116.779,123.68"}, {"trit.scale", "1,2,0.5"},
                         {"trit.resize_shorter", "256"}})
                      .import(&stats);
  CHECK(stats.preprocessing);
  CHECK(g.metadata.channel_order == ChannelOrder::BGR);
  CHECK(g.metadata.mean == std::vector<float>{103.939f, 116.779f, 123.68f});
  CHECK(g.metadata.scale == std::vector<float>{1, 2, 0.5f});
  CHECK(g.metadata.resize_shorter == 256);
  CHECK(graph({{"trit.mean", "1,2"}}).error() ==
        "cannot import ONNX 'test.onnx': metadata 'trit.mean' = '1,2' has 2 values for 3 input channels");
  CHECK(graph({{"trit.scale", "1,0,1"}}).error() ==
        "cannot import ONNX 'test.onnx': metadata 'trit.scale' = '1,0,1': every divisor must be > 0");
  CHECK(graph({{"trit.mean", "1,x,2"}}).error() ==
        "cannot import ONNX 'test.onnx': metadata 'trit.mean' = '1,x,2': 'x' is not a number");
  CHECK(graph({{"trit.channel_order", "GBR"}}).error() ==
        "cannot import ONNX 'test.onnx': metadata 'trit.channel_order' = 'GBR' is not RGB or BGR");
  CHECK(graph({{"trit.channel_order", "B\nGR"}}).error() ==
        "cannot import ONNX 'test.onnx': metadata 'trit.channel_order' = 'B?GR' is not RGB or BGR");  // one line
  CHECK(graph({{"trit.resize_shorter", "-4"}}).error() ==
        "cannot import ONNX 'test.onnx': metadata 'trit.resize_shorter' = '-4' is not a size in [0, 65536]");
}

TEST_CASE("Gemm with transB, MatMul + Add, Reshape and Flatten agree") {
  std::mt19937 rng(5);
  const auto w = test::random_floats(12, rng);  // [3 outputs][4 inputs]
  std::vector<float> wt(12);                    // [4][3]
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) wt[c * 3 + r] = w[r * 4 + c];
  const std::vector<float> bias{0.25f, -0.5f, 1.0f};

  OnnxGraph a(4, 1, 1);
  a.node("Flatten", {"x"}, "f");
  a.init("w", {3, 4}, w);
  a.init("b", {3}, bias);
  auto* gemm = a.node("Gemm", {"f", "w", "b"}, "y");
  integer(gemm, "transB", 1);
  a.output("y");

  OnnxGraph b(4, 1, 1);
  b.init_i64("shape", {-1, 4});
  b.node("Reshape", {"x", "shape"}, "f");
  b.init("w", {4, 3}, wt);
  b.init("b", {3}, bias);
  b.node("MatMul", {"f", "w"}, "m");
  b.node("Add", {"m", "b"}, "y");
  b.output("y");

  ImportStats stats;
  const Graph gb = b.import(&stats);
  CHECK(stats.folded_biases == 1);
  const std::vector<float> x{1, -2, 0.5f, 3};
  const auto ya = run(a.import(), x), yb = run(gb, x);
  CHECK(ya == yb);
  float want0 = 0.0f;
  for (int c = 0; c < 4; ++c) want0 += w[c] * x[c];
  CHECK(ya[0] == doctest::Approx(want0 + 0.25f).epsilon(1e-6));
}

TEST_CASE("auto_pad SAME_UPPER with stride 2 pads like TensorFlow") {
  OnnxGraph o(1, 4, 5);
  o.init("w", {1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  auto* c = o.node("Conv", {"x", "w"}, "y");
  text(c, "auto_pad", "SAME_UPPER");
  ints(c, "strides", {2, 2});
  o.output("y");
  const Graph g = o.import();
  const Window& w = g.nodes[0].window;
  // H 4: out 2, total pad (2-1)*2+3-4 = 1 -> 0 top, 1 bottom. W 5: out 3, total 2 -> 1, 1.
  CHECK(w.pad_top == 0);
  CHECK(w.pad_bottom == 1);
  CHECK(w.pad_left == 1);
  CHECK(w.pad_right == 1);
  CHECK(g.output().shape == std::vector<int32_t>{1, 2, 3});
}

TEST_CASE("what the importer refuses, it names") {
  SUBCASE("an unsupported op") {
    OnnxGraph o(1, 2, 2);
    o.node("Sigmoid", {"x"}, "y");
    o.output("y");
    CHECK(o.error() == "cannot import ONNX 'test.onnx': node 'y' (op Sigmoid): this operator is not supported");
  }
  SUBCASE("a grouped convolution") {
    OnnxGraph o(2, 2, 2);
    o.init("w", {2, 1, 1, 1}, {1, 1});
    integer(o.node("Conv", {"x", "w"}, "y"), "group", 2);
    o.output("y");
    CHECK(o.error().find("node 'y' (op Conv): group 2 is not supported") != std::string::npos);
  }
  SUBCASE("a batch norm with no convolution to fold into") {
    OnnxGraph o(1, 2, 2);
    for (const char* p : {"g", "b", "m", "v"}) o.init(p, {1}, {1.0f});
    o.node("BatchNormalization", {"x", "g", "b", "m", "v"}, "y");
    o.output("y");
    CHECK(o.error().find("cannot be folded") != std::string::npos);
  }
  SUBCASE("a broadcasting add") {
    OnnxGraph o(1, 2, 2);
    o.node("MaxPool", {"x"}, "p");
    ints(o.g->mutable_node(0), "kernel_shape", {2, 2});
    o.node("Add", {"x", "p"}, "y");
    o.output("y");
    CHECK(o.error().find("broadcasting is not supported") != std::string::npos);
  }
  SUBCASE("ceil_mode and dilations") {
    OnnxGraph o(1, 4, 4);
    auto* p = o.node("MaxPool", {"x"}, "y");
    ints(p, "kernel_shape", {2, 2});
    integer(p, "ceil_mode", 1);
    o.output("y");
    CHECK(o.error().find("ceil_mode 1 is not supported") != std::string::npos);
  }
  SUBCASE("weights whose data is short") {
    OnnxGraph o(1, 2, 2);
    o.init("w", {1, 1, 2, 2}, {1, 2, 3});
    o.node("Conv", {"x", "w"}, "y");
    o.output("y");
    CHECK(o.error().find("tensor 'w' has 12 bytes of data for 4 floats") != std::string::npos);
  }
  SUBCASE("bytes that are not ONNX") {
    CHECK_THROWS_WITH_AS(import_onnx_bytes("\x08\x01\xff\xff garbage", "junk.onnx"),
                         "cannot import ONNX 'junk.onnx': not an ONNX model (the protobuf does not parse)", Error);
    CHECK_THROWS_WITH_AS(import_onnx("/nonexistent.onnx"), "cannot import ONNX '/nonexistent.onnx': no such file", Error);
  }
}
