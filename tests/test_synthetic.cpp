// Synthetic calibration (converter/synthetic/): the input gradient against finite differences on
// a graph with every op; images from the generated ResNet-18's batch norms (the loss falls, one
// seed gives one set of images, they load back from PNG as they were); a graph without batch
// norms is refused; and the real ResNet-50 calibrated on a few synthetic images.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "helpers.h"
#include "metadata_options.h"
#include "onnx_import.h"
#include "synthetic/input_gradient.h"
#include "synthetic/synthesize.h"
#include "trit/error.h"

using namespace trit;
namespace fs = std::filesystem;

namespace {

double dot(std::span<const float> a, const std::vector<float>& b) {
  double s = 0;
  for (size_t j = 0; j < a.size(); ++j) s += double(a[j]) * b[j];
  return s;
}

// ResNet-18 as tests/make_resnet_family.py writes it (64 x 64, a batch norm after every Conv),
// with torchvision's preprocessing and no resize.
Graph family_resnet18(ImportStats& stats) {
  const auto path = test::testdata() / "family" / "resnet18.onnx";
  REQUIRE_MESSAGE(fs::exists(path), "tests/make_resnet_family.py did not run");
  Graph g = import_onnx(path.string(), &stats);
  apply_preset("torchvision", g.metadata);
  g.metadata.resize_shorter = 0;
  return g;
}

}  // namespace

TEST_CASE("the input gradient through every op equals finite differences") {
  const Graph g = test::tiny_graph(3);
  std::mt19937 rng(7);
  const int32_t batch = 2;
  const auto in_n = static_cast<size_t>(g.input().elements() * batch);
  std::vector<float> x = test::random_floats(in_n, rng, -2.0f, 2.0f);
  synth::InputGradient net(g);
  net.forward(x, batch);
  // L = r_out . logits + sum over nodes n of r_n . (n's output before its activation).
  const std::vector<float> r_out = test::random_floats(net.output().size(), rng);
  std::vector<std::vector<float>> r_pre;
  for (size_t n = 0; n < g.nodes.size(); ++n) r_pre.push_back(test::random_floats(net.before_activation(n).size(), rng));
  auto loss = [&] {
    net.forward(x, batch);
    double l = dot(net.output(), r_out);
    for (size_t n = 0; n < g.nodes.size(); ++n) l += dot(net.before_activation(n), r_pre[n]);
    return l;
  };
  loss();
  std::ranges::copy(r_out, net.output_seed().begin());
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    std::span<float> seed = net.before_activation_seed(n);
    for (size_t j = 0; j < seed.size(); ++j) seed[j] += r_pre[n][j];
  }
  std::vector<float> dx(in_n);
  net.backward(dx);
  // Central differences at two steps: where they disagree, a ReLU or a max pool switches within
  // the larger step (a kink, where the derivative is one-sided); such coordinates are skipped,
  // and there must be few of them.
  int checked = 0, kinks = 0;
  for (size_t j = 0; j < in_n; j += 2) {
    const double wide = test::numeric_derivative(loss, x, j, 1e-2f), narrow = test::numeric_derivative(loss, x, j, 5e-3f);
    if (std::abs(wide - narrow) > 2e-3 * (1 + std::abs(wide))) {
      ++kinks;
      continue;
    }
    CAPTURE(j);
    CHECK(dx[j] == doctest::Approx(wide).epsilon(1e-2).scale(0.1));
    ++checked;
  }
  MESSAGE(checked << " coordinates checked, " << kinks << " skipped at a kink");
  CHECK(kinks * 10 <= checked);
}

TEST_CASE("synthetic images from ResNet-18's batch norms: the loss falls, one seed gives one set, PNG keeps them") {
  ImportStats stats;
  const Graph g = family_resnet18(stats);
  REQUIRE(stats.batch_norms.size() == 20);  // every Conv's
  synth::SynthesisOptions o;
  o.count = 3;
  o.batch = 2;  // a full group and a partial one
  o.iterations = 24;
  o.coarse_share = 0;
  synth::SynthesisReport report;
  int steps = 0;
  const auto images = synth::synthesize(g, stats.batch_norms, o, &report, [&](int32_t, int32_t groups, int32_t, int32_t its, double) {
    CHECK(groups == 2);
    CHECK(its == 24);
    ++steps;
  });
  CHECK(steps == 48);
  MESSAGE("batch-norm loss " << report.start_loss << " -> " << report.end_loss);
  CHECK(report.end_loss < 0.7 * report.start_loss);
  REQUIRE(images.size() == 3);
  for (const Image& im : images) {
    CHECK(im.width == 64);
    CHECK(im.height == 64);
  }
  CHECK(images[0].pixels != images[1].pixels);
  // One seed, the same images; another seed, others.
  CHECK(synth::synthesize(g, stats.batch_norms, o)[2].pixels == images[2].pixels);
  o.seed = 2;
  CHECK(synth::synthesize(g, stats.batch_norms, o)[2].pixels != images[2].pixels);
  // With the coarse phase (the graph at 32 x 32): the loss at full resolution falls too.
  o.coarse_share = 0.5;
  o.count = 2;
  synth::synthesize(g, stats.batch_norms, o, &report);
  CHECK(report.end_loss < report.start_loss);
  // Saved as PNG, read back: the same pixels; an existing file is kept unless forced.
  const fs::path dir = fs::temp_directory_path() / "trit_test_synthetic";
  fs::remove_all(dir);
  synth::save_images(images, dir.string(), false);
  for (size_t i = 0; i < images.size(); ++i)
    CHECK(decode_image((dir / fmt::format("synthetic-{:04}.png", i)).string()).pixels == images[i].pixels);
  CHECK_THROWS_WITH_AS(synth::save_images(images, dir.string(), false),
                       doctest::Contains("the file exists (pass --force to replace it)"), Error);
  synth::save_images(images, dir.string(), true);
  fs::remove_all(dir);
}

TEST_CASE("a graph without batch norms cannot make synthetic images, and says so in one line") {
  const Graph g = test::tiny_graph(1);
  CHECK_THROWS_WITH_AS(synth::synthesize(g, {}, synth::SynthesisOptions{}),
                       "cannot make synthetic calibration images: the model has no batch normalization to take "
                       "statistics from (calibrate on photos with --calib DIR)",
                       Error);
}
