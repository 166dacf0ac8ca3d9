// Shared helpers of the tests: where the data lives, and small graphs built by hand.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <memory>

#include "trit/graph.h"

namespace trit::test {

// ../shared/data beside the checkout, when present.
inline std::optional<std::filesystem::path> shared_data() {
  const std::filesystem::path p = std::filesystem::path(TRIT_SOURCE_DIR) / ".." / "shared" / "data";
  if (std::filesystem::is_directory(p)) return p;
  return std::nullopt;
}

// Files the build's fixture tests generate (tests/make_*.py).
inline std::filesystem::path testdata() { return TRIT_TESTDATA_DIR; }
inline std::filesystem::path source_dir() { return TRIT_SOURCE_DIR; }

// Ends the test case as skipped, saying why. ctest reports it as Skipped, not Passed: the
// discovered tests match "TEST SKIPPED: " (SKIP_REGULAR_EXPRESSION, tests/CMakeLists.txt). Use it
// only where the whole case cannot run; a case that runs part of its checks says "not run".
#define TRIT_SKIP(reason)                     \
  do {                                        \
    MESSAGE("TEST SKIPPED: " << reason);      \
    return;                                   \
  } while (0)

#define TRIT_REQUIRE_SHARED(var)                                                  \
  const auto var##_opt = ::trit::test::shared_data();                             \
  if (!var##_opt) TRIT_SKIP("../shared/data is absent (real data lives only there)"); \
  const std::filesystem::path var = *var##_opt

template <typename T>
std::vector<T> read_binary(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  std::vector<T> out(size / sizeof(T));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(T)));
  return out;
}

// The derivative of loss() along coordinate j of p, by central differences with step eps
// (p[j] is restored).
template <typename F>
double numeric_derivative(F loss, std::vector<float>& p, size_t j, float eps) {
  const float keep = p[j];
  p[j] = keep + eps;
  const double up = loss();
  p[j] = keep - eps;
  const double down = loss();
  p[j] = keep;
  return (up - down) / (2.0 * eps);
}

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A graph that uses every op: input [3, 9, 8] -> Conv 3x3 (asymmetric pads, ReLU) -> MaxPool
// -> AveragePool -> Conv 1x1 stride 2 -> Add(with itself, ReLU) -> Relu -> GlobalAveragePool
// -> Flatten -> FullyConnected [10]. Float32 weights, seeded.
Graph tiny_graph(uint32_t seed = 1);

// An integer tensor, by hand.
Tensor tensor(std::string name, std::vector<int32_t> shape, ElementType type, int32_t exponent);
// Random integer weights of an encoding (codes, cluster scales, exponents 4-9, int32 biases
// within 2^20) for node n, as a file holds them.
void random_weights(Node& n, WeightEncoding enc, int32_t cluster, ClusterShape shape, std::array<int32_t, 4> s,
                    std::mt19937& rng);
// Random inputs over the whole range of t's type, for a batch.
std::vector<int32_t> random_input(const Tensor& t, int32_t batch, std::mt19937& rng);
// An integer graph with every op, random exponents and weights: input [3, 11, 9] (u8 or s8)
// -> Conv 3x3 ReLU (ternary) -> MaxPool -> AveragePool -> Conv 1x1 s8 (int8) -> Relu -> Add
// ReLU -> Add -> GlobalAveragePool + Flatten (or Flatten of the 6x5 map) -> FullyConnected
// int32 [7] (int4). The variant picks channel counts, types and the flatten.
std::shared_ptr<Graph> integer_graph(std::mt19937& rng, int variant);

// Convolution windows of every kind the kernels treat apart: 1x1 (stride 1 and 2), 3x3 padded
// and not, ResNet's 7x7 stride-2 stem, asymmetric pads, a non-square kernel and stride.
inline std::vector<Window> conv_windows() {
  return {{1, 1, 1, 1, 0, 0, 0, 0}, {1, 1, 2, 2, 0, 0, 0, 0}, {3, 3, 1, 1, 1, 1, 1, 1}, {3, 3, 2, 2, 0, 0, 1, 1},
          {7, 7, 2, 2, 3, 3, 3, 3}, {3, 3, 1, 1, 0, 2, 1, 0}, {2, 5, 1, 3, 0, 1, 0, 0}};
}

}  // namespace trit::test
