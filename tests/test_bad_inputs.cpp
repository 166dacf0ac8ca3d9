// Hostile inputs, one hazard at a time, through the whole path an application takes: every
// failure is a trit::Error with its one-line message, and the process goes on.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include "helpers.h"
#include "trit/error.h"
#include "trit/image.h"
#include "trit/model_file.h"
#include "trit/session.h"

using namespace trit;

namespace {

// Small valid model files: the float graph with every op, and integer graphs with every op and
// every weight encoding (ternary, int8 and int4 layers in each), made here so that a build
// without the converter tests its loader as hard.
std::vector<std::pair<std::string, std::vector<std::byte>>> models() {
  std::vector<std::pair<std::string, std::vector<std::byte>>> out;
  out.emplace_back("float", serialize_model(test::tiny_graph(3)));
  std::mt19937 rng(21);
  for (int variant = 0; variant < 3; ++variant)
    out.emplace_back(fmt::format("integer {}", variant), serialize_model(*test::integer_graph(rng, variant)));
  return out;
}

// Loads, prepares and runs a model from bytes; returns the error message, or "" when it ran.
std::string load_and_run(std::vector<std::byte> bytes) {
  try {
    auto graph = std::make_shared<const Graph>(load_model_bytes(std::move(bytes), "m.trit"));
    Session session(Model::from_graph(graph, {}));
    std::vector<float> x(static_cast<size_t>(graph->input().elements()), 0.5f);
    session.logits_from_tensor(x);
    return "";
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK_MESSAGE(what.find('\n') == std::string::npos, what);
    CHECK(!what.empty());
    return what;
  }
}

}  // namespace

TEST_CASE("every truncation of a model is refused with a one-line error") {
  for (const auto& [name, bytes] : models()) {
    CAPTURE(name);
    REQUIRE(load_and_run(bytes).empty());
    for (size_t len = 0; len < bytes.size(); len += 7) {
      CAPTURE(len);
      const std::string why = load_and_run(std::vector<std::byte>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len)));
      CHECK(why.rfind("cannot load model 'm.trit': ", 0) == 0);
    }
  }
}

TEST_CASE("single-bit flips anywhere in a model are refused or run, never crash") {
  int refused = 0, ran = 0;
  for (const auto& [name, bytes] : models()) {
    REQUIRE(load_and_run(bytes).empty());
    for (size_t bit = 0; bit < bytes.size() * 8; bit += 5) {
      auto flipped = bytes;
      flipped[bit / 8] ^= std::byte(1u << (bit % 8));
      (load_and_run(std::move(flipped)).empty() ? ran : refused)++;
    }
  }
  MESSAGE("single-bit flips: " << refused << " refused, " << ran << " still valid and run");
  CHECK(refused > 0);
  CHECK(ran > 0);  // most flips land in weights, which any value may take
}

TEST_CASE("bad image inputs: one hazard each") {
  const Image one{1, 1, {10, 20, 30}};
  auto model = Model::from_graph(std::make_shared<const Graph>(load_model_bytes(models()[1].second, "m.trit")), {});
  Session session(model);
  CHECK(session.logits(one).size() == static_cast<size_t>(model->classes()));  // a 1x1 image is stretched, not refused
  const Image lying{4, 4, std::vector<uint8_t>(5)};
  CHECK_THROWS_AS(session.logits(lying), Error);  // pixels do not match the size
}

TEST_CASE("names and labels with control characters are refused when saved and when loaded") {
  std::mt19937 rng(1);
  Graph g = *test::integer_graph(rng, 0);
  g.metadata.labels.assign(7, Label{"", "ok"});
  g.metadata.labels[3].name = "two\nlines";
  CHECK_THROWS_WITH_AS(serialize_model(g), doctest::Contains("label 3 holds a control character (byte 0x0a)"), Error);
  g.metadata.labels[3].name = "fine";
  g.nodes[0].name = "esc\x1b[2J";
  CHECK_THROWS_WITH_AS(serialize_model(g), doctest::Contains("node 0's name holds a control character (byte 0x1b)"), Error);
}

TEST_CASE("a valid model too big for memory is refused before anything is allocated") {
  auto error_of = [](auto&& make) {
    try {
      make();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  // A float model whose 20000 x 20000 maps need about 11 GB per run: each tensor is within the
  // format's limits, the sum is not within the default limit of 8 GiB.
  auto g = std::make_shared<Graph>();
  g->tensors = {{"x", {3, 20000, 20000}}, {"y", {4, 20000, 20000}}, {"g", {4, 1, 1}}, {"f", {4}}};
  g->inputs = {0};
  g->outputs = {3};
  auto node = [&](const char* name, OpCode op, int32_t in, int32_t out) -> Node& {
    Node& n = g->nodes.emplace_back();
    n.name = name;
    n.op = op;
    n.inputs = {in};
    n.outputs = {out};
    return n;
  };
  Node& conv = node("conv", OpCode::Conv, 0, 1);
  conv.window = {1, 1, 1, 1, 0, 0, 0, 0};
  conv.weights.shape = {4, 3, 1, 1};
  conv.weights.codes = Blob::from_vector(std::vector<float>(12, 0.5f));
  conv.bias = Blob::from_vector(std::vector<float>(4, 0.0f));
  node("gap", OpCode::GlobalAveragePool, 1, 2);
  node("flatten", OpCode::Flatten, 2, 3);
  const auto model = Model::from_graph(g, {});
  CHECK(error_of([&] { Session s(model); }) ==
        "cannot make a session for 1 images: its activations need 11200.0 MB, above the memory limit of 8589.9 MB "
        "(Model::Options::memory_limit)");

  // The same limit, lowered, on a small integer model: its weights, then a large batch.
  const auto graph = std::make_shared<const Graph>(load_model_bytes(models()[1].second, "m.trit"));
  Model::Options small;
  small.memory_limit = 100;
  CHECK(error_of([&] { Model::from_graph(graph, small); }).starts_with("cannot make a model: its weights need 0.0 MB prepared, above the memory limit of 0.0 MB"));
  small.memory_limit = 100000;
  const auto int8 = Model::from_graph(graph, small);
  CHECK(error_of([&] { Session s(int8, 1); }).empty());
  CHECK(error_of([&] { Session s(int8, 100000); }).starts_with("cannot make a session for 100000 images: its activations need"));
  CHECK(error_of([&] { Session s(int8, 2147483647); }).starts_with("cannot make a session for 2147483647 images"));
}

TEST_CASE("the crashes fuzzing found stay fixed") {
  // tests/fuzz/model/crash-9cc0...: an integer model whose input is int32 (the reference
  // overflowed); tests/fuzz/image/crash-9814...: a JPEG Huffman table of more than 256 codes
  // (Debian's stb_image writes past its table). Both are replayed by ctest fuzz_corpus_*; here
  // their messages.
  const auto dir = test::source_dir() / "tests" / "fuzz";
  // The one file of each name prefix: a missing file is a failure, not a silent pass.
  auto one = [&](const char* folder, const std::string& prefix) {
    std::vector<std::filesystem::path> found;
    for (const auto& e : std::filesystem::directory_iterator(dir / folder))
      if (e.path().filename().string().starts_with(prefix)) found.push_back(e.path());
    REQUIRE_MESSAGE(found.size() == 1, found.size() << " files in tests/fuzz/" << folder << " start with " << prefix);
    return found[0];
  };
  const auto huffman = test::read_binary<uint8_t>(one("image", "crash-9814"));
  CHECK_THROWS_WITH_AS(decode_image_bytes(huffman, "x.jpg"), doctest::Contains("a Huffman table of"), Error);
  const auto int32_input = test::read_binary<char>(one("model", "crash-9cc0"));
  std::vector<std::byte> b(int32_input.size());
  std::memcpy(b.data(), int32_input.data(), int32_input.size());
  CHECK(load_and_run(std::move(b)).find("int32") != std::string::npos);
}
