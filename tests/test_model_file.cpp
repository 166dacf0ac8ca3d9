// The .trit format: round trip, and the loader's refusals of damaged files.
#include <doctest/doctest.h>

#include <cstring>

#include "helpers.h"
#include "trit/error.h"
#include "trit/graph_check.h"
#include "trit/model_file.h"
#include "trit_generated.h"

using namespace trit;

namespace {

bool same_blob(const Blob& a, const Blob& b) {
  return a.size == b.size && (a.size == 0 || std::memcmp(a.data, b.data, a.size) == 0);
}

void expect_same(const Graph& a, const Graph& b) {
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    CHECK(a.tensors[i].name == b.tensors[i].name);
    CHECK(a.tensors[i].shape == b.tensors[i].shape);
    CHECK(a.tensors[i].type == b.tensors[i].type);
    CHECK(a.tensors[i].exponent == b.tensors[i].exponent);
  }
  REQUIRE(a.nodes.size() == b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const Node &x = a.nodes[i], &y = b.nodes[i];
    CAPTURE(x.name);
    CHECK(x.name == y.name);
    CHECK(x.op == y.op);
    CHECK(x.inputs == y.inputs);
    CHECK(x.outputs == y.outputs);
    CHECK(std::memcmp(&x.window, &y.window, sizeof(Window)) == 0);
    CHECK(x.activation == y.activation);
    CHECK(x.count_include_pad == y.count_include_pad);
    CHECK(x.weights.encoding == y.weights.encoding);
    CHECK(x.weights.shape == y.weights.shape);
    CHECK(x.weights.cluster_size == y.weights.cluster_size);
    CHECK(x.weights.cluster_shape == y.weights.cluster_shape);
    CHECK(same_blob(x.weights.codes, y.weights.codes));
    CHECK(same_blob(x.weights.scales, y.weights.scales));
    CHECK(same_blob(x.weights.scale_exponents, y.weights.scale_exponents));
    CHECK(same_blob(x.bias, y.bias));
  }
  CHECK(a.inputs == b.inputs);
  CHECK(a.outputs == b.outputs);
  const Metadata &m = a.metadata, &n = b.metadata;
  CHECK(m.channel_order == n.channel_order);
  CHECK(m.mean == n.mean);
  CHECK(m.scale == n.scale);
  CHECK(m.resize_shorter == n.resize_shorter);
  REQUIRE(m.labels.size() == n.labels.size());
  for (size_t i = 0; i < m.labels.size(); ++i) {
    CHECK(m.labels[i].wnid == n.labels[i].wnid);
    CHECK(m.labels[i].name == n.labels[i].name);
  }
  CHECK(m.source == n.source);
  CHECK(m.converter_version == n.converter_version);
  CHECK(m.converter_options == n.converter_options);
}

// The tiny graph with conv2 as ternary (kernels, N=4: 6 inputs give clusters of 4 and 2) and
// the fully connected layer as int4 (channels, N=2) and conv1 as int8: every encoding in one file.
Graph mixed_graph() {
  Graph g = test::tiny_graph();
  std::mt19937 rng(7);
  auto bytes = [&](size_t n, int lo, int hi) {
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(d(rng));
    return v;
  };
  auto to_int = [&](Node& n, WeightEncoding e, int32_t cluster, ClusterShape shape) {
    Weights& w = n.weights;
    w.encoding = e;
    w.cluster_size = cluster;
    w.cluster_shape = shape;
    w.codes = Blob::from_vector(bytes(weight_code_bytes(e, w.count()), 0, 255));
    w.scales = Blob::from_vector(bytes(cluster_count(w), 1, 127));
    w.scale_exponents = Blob::from_vector(bytes(w.shape[0], 0, 20));
    n.bias = Blob::from_vector(std::vector<int32_t>(w.shape[0], -3));
  };
  to_int(g.nodes[0], WeightEncoding::Int8PerChannel, 0, ClusterShape::Kernels);
  to_int(g.nodes[3], WeightEncoding::TernaryClustered, 4, ClusterShape::Kernels);
  to_int(g.nodes[8], WeightEncoding::Int4Clustered, 2, ClusterShape::Channels);
  g.tensors[1].type = ElementType::UInt8;
  g.tensors[1].exponent = 5;
  g.tensors[4].type = ElementType::Int8;
  g.tensors[4].exponent = -3;
  return g;
}

std::string load_error(std::vector<std::byte> bytes) {
  try {
    load_model_bytes(std::move(bytes), "m.trit");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A FlatBuffer built by hand, for files our writer would never make.
std::vector<std::byte> raw_model(uint32_t version, uint64_t blob_offset) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<int32_t> shape{1, 1, 1, 1};
  auto opts = fb::CreateConvOptions(fbb, 1, 1);
  fb::Blob codes(blob_offset, 4);
  auto weights = fb::CreateWeightsDirect(fbb, fb::WeightEncoding::Float32, &shape, &codes);
  std::vector<int32_t> in{0}, out{1};
  auto node = fb::CreateNodeDirect(fbb, "conv", fb::OpCode::Conv, &in, &out, fb::OpOptions::ConvOptions,
                                   opts.Union(), weights);
  std::vector<flatbuffers::Offset<fb::Node>> nodes{node};
  auto meta = fb::CreateMetadataDirect(fbb);
  auto model = fb::CreateModelDirect(fbb, version, nullptr, &nodes, &in, &out, meta);
  fbb.FinishSizePrefixed(model, fb::ModelIdentifier());
  std::vector<std::byte> bytes(fbb.GetSize() + 256);
  std::memcpy(bytes.data(), fbb.GetBufferPointer(), fbb.GetSize());
  return bytes;
}

}  // namespace

TEST_CASE("a model with every op and every weight encoding survives the round trip") {
  const Graph g = mixed_graph();
  const std::vector<std::byte> bytes = serialize_model(g);
  const Graph back = load_model_bytes(bytes, "mixed.trit");
  expect_same(g, back);
  CHECK(serialize_model(back) == bytes);  // deterministic
  // Every blob is 64-byte aligned in the loaded file.
  for (const Node& n : back.nodes) {
    for (const Blob* b : {&n.weights.codes, &n.weights.scales, &n.weights.scale_exponents, &n.bias})
      if (!b->empty()) CHECK(reinterpret_cast<uintptr_t>(b->data) % 64 == 0);
  }
}

TEST_CASE("save_model writes a file load_model maps, and never replaces a file unasked") {
  const auto path = std::filesystem::temp_directory_path() / fmt::format("trit-test-{}.trit", ::getpid());
  std::filesystem::remove(path);
  const Graph g = test::tiny_graph();
  save_model(g, path.string(), false);
  expect_same(g, load_model(path.string()));
  CHECK_THROWS_WITH_AS(save_model(g, path.string(), false), doctest::Contains("the file exists"), Error);
  save_model(g, path.string(), true);
  std::filesystem::remove(path);
}

TEST_CASE("the loader refuses damaged files with one-line errors") {
  const std::vector<std::byte> good = serialize_model(test::tiny_graph());

  SUBCASE("every truncation") {
    for (size_t len : {size_t{0}, size_t{3}, size_t{8}, size_t{64}, good.size() / 2, good.size() - 1}) {
      CAPTURE(len);
      const std::string e = load_error({good.begin(), good.begin() + static_cast<ptrdiff_t>(len)});
      CHECK(e.find("cannot load model 'm.trit': ") == 0);
      CHECK(e.find('\n') == std::string::npos);
    }
  }
  SUBCASE("wrong identifier") {
    auto bad = good;
    bad[8] = std::byte{'X'};
    CHECK(load_error(bad).find("identifier") != std::string::npos);
  }
  SUBCASE("a newer version names both numbers") {
    const std::string e = load_error(raw_model(2, 0));
    CHECK(e.find("format version 2 is not supported (this build reads 1 to 1)") != std::string::npos);
  }
  SUBCASE("weights pointing past the end of the file") {
    const std::string e = load_error(raw_model(1, uint64_t{1} << 40));
    CHECK(e.find("node 'conv' weights data [1099511627776, 1099511627780) lies outside") != std::string::npos);
  }
  SUBCASE("an offset that would overflow") {
    const std::string e = load_error(raw_model(1, UINT64_MAX - 1));
    CHECK(e.find("lies outside the data section") != std::string::npos);
  }
  SUBCASE("a missing file and a directory") {
    CHECK_THROWS_WITH_AS(load_model("/nonexistent/m.trit"),
                         "cannot load model '/nonexistent/m.trit': No such file or directory", Error);
    CHECK_THROWS_WITH_AS(load_model("/tmp"), "cannot load model '/tmp': not a regular file", Error);
  }
}

TEST_CASE("check_graph refuses graphs that do not add up") {
  SUBCASE("a wrong output shape") {
    Graph g = test::tiny_graph();
    g.tensors[g.nodes[0].outputs[0]].shape[1] += 1;
    CHECK_THROWS_WITH_AS(check_graph(g, "ctx"), doctest::Contains("node 'conv1' (Conv) output 'conv1' has shape"), Error);
  }
  SUBCASE("a cycle: a node reads what a later node writes") {
    Graph g = test::tiny_graph();
    g.nodes[1].inputs = {g.nodes[2].outputs[0]};
    CHECK_THROWS_WITH_AS(check_graph(g, "ctx"), doctest::Contains("before any node writes it"), Error);
  }
  SUBCASE("weights of the wrong size") {
    Graph g = test::tiny_graph();
    g.nodes[0].weights.codes.size -= 4;
    CHECK_THROWS_WITH_AS(check_graph(g, "ctx"), doctest::Contains("float32 weights take 648 bytes, the model has 644"), Error);
  }
  SUBCASE("a weight that is not finite") {
    Graph g = test::tiny_graph();
    std::vector<float> w(g.nodes[0].weights.count(), 0.0f);
    w[5] = std::numeric_limits<float>::quiet_NaN();
    g.nodes[0].weights.codes = Blob::from_vector(w);
    CHECK_THROWS_WITH_AS(check_graph(g, "ctx"), doctest::Contains("weights holds a value that is not finite"), Error);
  }
  SUBCASE("a zero scale and a cluster scale out of range") {
    Graph g = mixed_graph();
    g.metadata.scale[1] = 0.0f;
    CHECK_THROWS_WITH_AS(check_graph(g, "ctx"), doctest::Contains("scale 0 is not a positive number"), Error);
    g = mixed_graph();
    g.nodes[3].weights.scales = Blob::from_vector(std::vector<uint8_t>(g.nodes[3].weights.scales.size, 200));
    CHECK_THROWS_WITH_AS(check_graph(g, "ctx"), doctest::Contains("cluster scale is outside [1, 127]"), Error);
  }
  SUBCASE("an exponent out of range and an unknown op") {
    Graph g = test::tiny_graph();
    g.tensors[2].exponent = 40;
    CHECK_THROWS_WITH_AS(check_graph(g, "ctx"), doctest::Contains("exponent 40 is outside [-32, 32]"), Error);
    g = test::tiny_graph();
    g.nodes[1].op = static_cast<OpCode>(99);
    CHECK_THROWS_WITH_AS(check_graph(g, "ctx"), doctest::Contains("unknown op code 99"), Error);
  }
  SUBCASE("shapes whose product overflows") {
    Graph g = test::tiny_graph();
    g.tensors[0].shape = {1 << 20, 1 << 20, 1 << 20};
    CHECK_THROWS_WITH_AS(check_graph(g, "ctx"), doctest::Contains("has 2^31 elements or more"), Error);
  }
}
