// Block reconstruction's pieces (converter/reconstruct/): every gradient against finite
// differences, at several shapes, strides and paddings; Adam's step; the learned rounding's
// start and end; a whole block's gradient; and which images are held back.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "helpers.h"
#include "reconstruct/adam.h"
#include "reconstruct/block_net.h"
#include "reconstruct/ops.h"
#include "reconstruct/reconstruct.h"
#include "reconstruct/soft_rounding.h"

using namespace trit;
using namespace trit::recon;

namespace {

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t j = 0; j < a.size(); ++j) s += double(a[j]) * b[j];
  return s;
}

}  // namespace

TEST_CASE("convolution backward equals finite differences, at every window the models use") {
  std::mt19937 rng(5);
  const std::vector<Window> windows{{1, 1, 1, 1, 0, 0, 0, 0}, {1, 1, 2, 2, 0, 0, 0, 0}, {3, 3, 1, 1, 1, 1, 1, 1},
                                    {3, 3, 2, 2, 0, 0, 1, 1}, {3, 3, 2, 2, 1, 1, 1, 1}, {7, 7, 2, 2, 3, 3, 3, 3},
                                    {2, 5, 1, 3, 0, 1, 0, 0}, {3, 3, 1, 1, 0, 2, 1, 0}};
  int cases = 0;
  for (const Window& w : windows)
    for (const int32_t c : {1, 3, 5})
      for (const int32_t o : {2, 4}) {
        const int32_t h = 9, wd = 8;
        ConvShape s{{c, h, wd}, {o, w.out_h(h), w.out_w(wd)}, w};
        const int32_t batch = 2;
        std::vector<float> x = test::random_floats(static_cast<size_t>(s.in.size() * batch), rng);
        std::vector<float> wt = test::random_floats(static_cast<size_t>(o * s.k()), rng);
        std::vector<float> b = test::random_floats(o, rng);
        const std::vector<float> r = test::random_floats(static_cast<size_t>(s.out.size() * batch), rng);
        std::vector<float> y(r.size());
        auto loss = [&] {
          conv_forward(s, x.data(), batch, wt.data(), b.data(), y.data());
          return dot(r, y);
        };
        std::vector<float> dx(x.size(), 0.0f), dw(wt.size(), 0.0f), db(b.size(), 0.0f);
        conv_backward(s, x.data(), batch, wt.data(), r.data(), dx.data(), dw.data(), db.data());
        CAPTURE(c);
        CAPTURE(o);
        CAPTURE(w.kernel_h);
        CAPTURE(w.stride_h);
        CAPTURE(w.pad_top);
        // The loss is linear in each variable: central differences are exact up to rounding.
        for (size_t j = 0; j < x.size(); j += 7) CHECK(dx[j] == doctest::Approx(test::numeric_derivative(loss, x, j, 0.05f)).epsilon(1e-3).scale(1));
        for (size_t j = 0; j < wt.size(); j += 5) CHECK(dw[j] == doctest::Approx(test::numeric_derivative(loss, wt, j, 0.05f)).epsilon(1e-3).scale(1));
        for (size_t j = 0; j < b.size(); ++j) CHECK(db[j] == doctest::Approx(test::numeric_derivative(loss, b, j, 0.05f)).epsilon(1e-3).scale(1));
        ++cases;
      }
  CHECK(cases == 48);
}

TEST_CASE("the activation rounds as the integer pipeline does, and its gradient is the straight-through one") {
  const std::vector<float> z{-3.0f, -0.2f, 0.0f, 0.124f, 0.126f, 1.0f, 31.9f, 40.0f, -40.0f};
  std::vector<float> q(z.size());
  std::vector<uint8_t> pass(z.size());
  // u8 after a ReLU, exponent 3 (steps of 1/8, up to 255/8 = 31.875).
  activate(z.data(), static_cast<int64_t>(z.size()), 3, 0, 255, true, nullptr, q.data(), pass.data());
  CHECK(q == std::vector<float>{0, 0, 0, 0.125f, 0.125f, 1.0f, 31.875f, 31.875f, 0});
  CHECK(pass == std::vector<uint8_t>{0, 0, 1, 1, 1, 1, 0, 0, 0});
  // s8, exponent 2: [-128, 127] / 4.
  activate(z.data(), static_cast<int64_t>(z.size()), 2, -128, 127, false, nullptr, q.data(), pass.data());
  CHECK(q == std::vector<float>{-3.0f, -0.25f, 0, 0, 0.25f, 1.0f, 31.75f, 31.75f, -32.0f});
  CHECK(pass == std::vector<uint8_t>{1, 1, 1, 1, 1, 1, 0, 0, 0});
  // Kept in float (QDrop): the value itself (after the ReLU), its gradient the ReLU's.
  std::vector<uint64_t> all{~uint64_t{0}};
  activate(z.data(), static_cast<int64_t>(z.size()), 3, 0, 255, true, all.data(), q.data(), pass.data());
  CHECK(q == std::vector<float>{0, 0, 0, 0.124f, 0.126f, 1.0f, 31.9f, 40.0f, 0});
  CHECK(pass == std::vector<uint8_t>{0, 0, 0, 1, 1, 1, 1, 1, 0});
  std::vector<float> dz(z.size(), 0.0f);
  const std::vector<float> dq(z.size(), 2.0f);
  activate_backward(dq.data(), pass.data(), static_cast<int64_t>(z.size()), dz.data());
  CHECK(dz == std::vector<float>{0, 0, 0, 2, 2, 2, 2, 2, 0});
  // A long run (the vectorized loop, not only its tail) against the formula in double, every
  // element quantized, then half of them kept by QDrop's bits.
  std::mt19937 rng(5);
  const int64_t n = 1000;
  std::vector<float> zl(n), ql(n);
  std::vector<uint8_t> pl(n);
  for (float& x : zl) x = std::uniform_real_distribution<float>(-40.0f, 40.0f)(rng);
  std::vector<uint64_t> mixed(static_cast<size_t>((n + 63) / 64));
  random_bits(3, n, 0.5, mixed.data());
  for (const bool relu : {false, true}) {
    const int32_t lo = relu ? 0 : -128, hi = relu ? 255 : 127;
    for (const uint64_t* keep : {static_cast<const uint64_t*>(nullptr), static_cast<const uint64_t*>(mixed.data())}) {
      activate(zl.data(), n, 3, lo, hi, relu, keep, ql.data(), pl.data());
      int64_t wrong = 0;
      for (int64_t j = 0; j < n; ++j) {
        const double scaled = double(zl[j]) * 8;
        float want = static_cast<float>(std::clamp(std::floor(scaled + 0.5), double(lo), double(hi)) / 8);
        bool through = scaled >= lo && scaled <= hi;
        if (keep && (keep[j >> 6] >> (j & 63) & 1)) {
          want = relu ? std::max(zl[j], 0.0f) : zl[j];
          through = !relu || zl[j] > 0;
        }
        wrong += ql[j] != want || pl[j] != through;
      }
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("QDrop's bits: the share set is the probability asked, the same for a seed, others for another") {
  const int64_t n = 64000 - 5;  // a last word partly past n, whose bits there stay 0
  std::vector<uint64_t> a(1000), b(1000), c(1000);
  random_bits(7, n, 0.5, a.data());
  random_bits(7, n, 0.5, b.data());
  random_bits(8, n, 0.5, c.data());
  CHECK(a == b);
  CHECK(a != c);
  for (const double p : {0.0, 0.1, 0.25, 0.5, 0.9, 1.0}) {
    CAPTURE(p);
    random_bits(7, n, p, a.data());
    int64_t ones = 0;
    for (uint64_t w : a) ones += __builtin_popcountll(w);
    CHECK((a.back() >> 59) == 0);
    // Within 4.5 standard deviations of n p (exact at 0 and 1).
    CHECK(std::abs(double(ones) - double(n) * p) <= 4.5 * std::sqrt(double(n) * p * (1 - p)));
  }
  // A lower probability sets a subset of a higher one's bits (one hash, two thresholds).
  random_bits(7, n, 0.1, a.data());
  random_bits(7, n, 0.5, b.data());
  int64_t outside = 0;
  for (size_t i = 0; i < a.size(); ++i) outside += __builtin_popcountll(a[i] & ~b[i]);
  CHECK(outside == 0);
}

TEST_CASE("Adam's step is the formula's, and it finds a quadratic's minimum") {
  Adam adam(2, 0.1);
  std::vector<float> p{1.0f, -2.0f};
  adam.step(p, std::vector<float>{0.5f, -4.0f});
  // First step: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps).
  CHECK(p[0] == doctest::Approx(0.9).epsilon(1e-6));
  CHECK(p[1] == doctest::Approx(-1.9).epsilon(1e-6));
  Adam fit(1, 0.05);
  std::vector<float> x{3.0f};
  for (int i = 0; i < 2000; ++i) fit.step(x, std::vector<float>{2.0f * (x[0] - 1.25f)});
  CHECK(x[0] == doctest::Approx(1.25).epsilon(1e-3));
}

namespace {

// A quantized 3x3 layer on a [4, 5, 5] input, as the quantizer emits one.
struct OneLayer {
  Graph g;
  std::vector<float> given;
  explicit OneLayer(WeightEncoding enc, uint32_t seed) {
    std::mt19937 rng(seed);
    g.tensors = {test::tensor("in", {4, 5, 5}, ElementType::UInt8, 4), test::tensor("out", {6, 5, 5}, ElementType::Int8, 3)};
    Node n;
    n.name = "layer";
    n.op = OpCode::Conv;
    n.inputs = {0};
    n.outputs = {1};
    n.window = {3, 3, 1, 1, 1, 1, 1, 1};
    test::random_weights(n, enc, 2, ClusterShape::Kernels, {6, 4, 3, 3}, rng);
    g.nodes.push_back(n);
    g.inputs = {0};
    g.outputs = {1};
    given = test::random_floats(6 * 36, rng, -0.5f, 0.5f);
  }
};

}  // namespace

TEST_CASE("learned rounding: it starts at the layer-wise codes, and its gradients equal finite differences") {
  for (auto enc : {WeightEncoding::TernaryClustered, WeightEncoding::Int4Clustered, WeightEncoding::Int8PerChannel}) {
    const std::string name = to_string(enc);
    CAPTURE(name);
    const OneLayer l(enc, 3);
    SoftRounding s(l.g, l.g.nodes[0], l.given);
    // Hard at the start: the layer-wise codes and scales, exactly.
    const quant::QuantizedLayer q = s.result();
    CHECK(q.codes == unpack_codes(l.g.nodes[0].weights, l.g.nodes[0].weights.codes.as<uint8_t>(), "layer"));
    const auto scales = l.g.nodes[0].weights.scales.as<uint8_t>();
    CHECK(q.scales == std::vector<uint8_t>(scales.begin(), scales.end()));
    CHECK(s.flipped() == 0.0);
    // Soft, the start is within 2 % of a code step of the codes.
    std::vector<float> soft(static_cast<size_t>(6 * 36)), hard(soft.size());
    s.weights(false, soft.data());
    s.weights(true, hard.data());
    // Gradients of sum r * W(V, s) and of the regularizer.
    std::mt19937 rng(9);
    for (float& v : s.v()) v = std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng);
    for (float& x : s.log_scale()) x = std::uniform_real_distribution<float>(-0.2f, 0.2f)(rng);
    const std::vector<float> r = test::random_floats(soft.size(), rng);
    auto loss = [&] {
      s.weights(false, soft.data());
      return dot(r, soft);
    };
    std::vector<float> dv(s.v().size()), ds(s.log_scale().size());
    s.weights(false, soft.data());  // backward() and regularizer() follow the soft weights of the same V
    s.backward(r.data(), dv.data(), ds.data());
    for (size_t j = 0; j < dv.size(); j += 3) CHECK(dv[j] == doctest::Approx(test::numeric_derivative(loss, s.v(), j, 1e-3f)).epsilon(2e-2).scale(1e-2));
    for (size_t j = 0; j < ds.size(); ++j)
      CHECK(ds[j] == doctest::Approx(test::numeric_derivative(loss, s.log_scale(), j, 1e-3f)).epsilon(2e-2).scale(1e-2));
    std::vector<float> reg(dv.size(), 0.0f), ignore(dv.size(), 0.0f);
    s.weights(false, soft.data());
    s.regularizer(4.0, 0.5, reg.data());
    auto reg_loss = [&] {
      s.weights(false, soft.data());
      return s.regularizer(4.0, 0.5, ignore.data());
    };
    for (size_t j = 0; j < reg.size(); j += 3)
      CHECK(reg[j] == doctest::Approx(test::numeric_derivative(reg_loss, s.v(), j, 1e-3f)).epsilon(2e-2).scale(1e-2));
    // Where h is clamped (|V| > 2.398; weights() skips the sigmoid beyond 2.45), the soft weights
    // are the hard ones, and neither the loss nor the regularizer has a gradient.
    for (float sign : {-1.0f, 1.0f}) {
      for (size_t j = 0; j < s.v().size(); ++j) s.v()[j] = sign * (2.41f + 0.01f * float(j % 200));
      s.weights(true, hard.data());
      s.weights(false, soft.data());
      CHECK(soft == hard);
      s.backward(r.data(), dv.data(), ds.data());
      CHECK(std::all_of(dv.begin(), dv.end(), [](float x) { return x == 0.0f; }));
      std::fill(reg.begin(), reg.end(), 0.0f);
      CHECK(s.regularizer(4.0, 0.5, reg.data()) == 0.0);
      CHECK(std::all_of(reg.begin(), reg.end(), [](float x) { return x == 0.0f; }));
    }
  }
}

TEST_CASE("a whole block's gradient (two layers, an Add) equals finite differences with its activations in float") {
  // [3, 6, 6] u8 -> conv 3x3 ReLU (ternary) -> conv 1x1 (int4) ; input -> conv 1x1 (ternary) ; Add ReLU.
  std::mt19937 rng(17);
  Graph g;
  g.tensors = {test::tensor("x", {3, 6, 6}, ElementType::UInt8, 4), test::tensor("a", {4, 6, 6}, ElementType::UInt8, 4),
               test::tensor("b", {5, 6, 6}, ElementType::Int8, 4), test::tensor("p", {5, 6, 6}, ElementType::Int8, 4),
               test::tensor("y", {5, 6, 6}, ElementType::UInt8, 3)};
  auto layer = [&](const char* name, int32_t in, int32_t out, Window w, WeightEncoding enc, std::array<int32_t, 4> s, bool relu) {
    Node n;
    n.name = name;
    n.op = OpCode::Conv;
    n.inputs = {in};
    n.outputs = {out};
    n.window = w;
    n.activation = relu ? Activation::Relu : Activation::None;
    test::random_weights(n, enc, 2, ClusterShape::Kernels, s, rng);
    // Biases near the outputs' size (random_weights' reach 2^20 at the accumulator's scale, far
    // more than a float's precision leaves room for a finite difference beside them).
    std::vector<int32_t> bias(static_cast<size_t>(s[0]));
    for (int32_t& b : bias) b = std::uniform_int_distribution<int32_t>(-256, 256)(rng);
    n.bias = Blob::from_vector(bias);
    g.nodes.push_back(n);
  };
  layer("a", 0, 1, {3, 3, 1, 1, 1, 1, 1, 1}, WeightEncoding::TernaryClustered, {4, 3, 3, 3}, true);
  layer("b", 1, 2, {}, WeightEncoding::Int4Clustered, {5, 4, 1, 1}, false);
  layer("p", 0, 3, {}, WeightEncoding::TernaryClustered, {5, 3, 1, 1}, false);
  Node add;
  add.name = "add";
  add.op = OpCode::Add;
  add.inputs = {2, 3};
  add.outputs = {4};
  add.activation = Activation::Relu;
  g.nodes.push_back(add);
  g.inputs = {0};
  g.outputs = {4};
  const Segment seg{0, 4, 0, 4, true};
  std::map<size_t, std::vector<float>> given;
  given[0] = test::random_floats(4 * 27, rng, -0.3f, 0.3f);
  given[1] = test::random_floats(5 * 4, rng, -0.3f, 0.3f);
  given[2] = test::random_floats(5 * 3, rng, -0.3f, 0.3f);
  BlockNet net(g, seg, given);
  for (auto& [ni, l] : net.layers())
    for (float& v : l->v()) v = std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng);
  const int32_t batch = 2;
  const std::vector<float> x = test::random_floats(3 * 36 * batch, rng, 0.0f, 0.05f);
  const std::vector<float> target = test::random_floats(5 * 36 * batch, rng, 0.0f, 2.0f);
  const BlockNet::Keep all{BlockNet::Keep::All, 0};
  auto loss = [&] {
    const std::vector<float>& out = net.forward(x, batch, false, all);
    double l = 0;
    for (size_t j = 0; j < out.size(); ++j) l += (double(out[j]) - target[j]) * (double(out[j]) - target[j]);
    return l;
  };
  const std::vector<float> out = net.forward(x, batch, false, all);
  std::vector<float> dout(out.size());
  for (size_t j = 0; j < out.size(); ++j) dout[j] = 2 * (out[j] - target[j]);
  net.backward(dout);
  int checked = 0;
  for (auto& [ni, l] : net.layers()) {
    CAPTURE(ni);
    const BlockNet::Grads gr = net.grads(ni);
    std::vector<float> dv(l->v().size()), ds(l->log_scale().size());
    l->backward(gr.dw.data(), dv.data(), ds.data());
    for (size_t j = 0; j < l->bias().size(); ++j, ++checked)
      CHECK(gr.db[j] == doctest::Approx(test::numeric_derivative(loss, l->bias(), j, 1e-3f)).epsilon(2e-2).scale(1e-1));
    for (size_t j = 0; j < dv.size(); j += 4, ++checked)
      CHECK(dv[j] == doctest::Approx(test::numeric_derivative(loss, l->v(), j, 1e-3f)).epsilon(2e-2).scale(1e-1));
    for (size_t j = 0; j < ds.size(); ++j, ++checked)
      CHECK(ds[j] == doctest::Approx(test::numeric_derivative(loss, l->log_scale(), j, 1e-3f)).epsilon(2e-2).scale(1e-1));
  }
  CHECK(checked > 40);
}

namespace {

// A sample whose images come from the photos listed (views of one photo one after the other).
class PhotoSample : public BlockData {
 public:
  explicit PhotoSample(std::vector<int64_t> photos) : photos_(std::move(photos)) {}
  int64_t images() const override { return static_cast<int64_t>(photos_.size()); }
  int64_t photo(int64_t j) const override { return photos_[j]; }
  void quantized_input(int64_t, int32_t*) const override {}
  void float_input(int64_t, float*) const override {}
  void float_output(int64_t, float*) const override {}

 private:
  std::vector<int64_t> photos_;
};

}  // namespace

TEST_CASE("the held-back images: every 8th photo, with all its augmented views, and none of them trained on") {
  // Without augmentation (one view a photo, the sample spread over the photos): every 8th image.
  std::vector<int64_t> spread;
  for (int64_t j = 0; j < 100; ++j) spread.push_back(3 * j + 1);
  const SampleSplit one = split_sample(PhotoSample(spread), 8);
  std::vector<int64_t> expected;
  for (int64_t j = 7; j < 100; j += 8) expected.push_back(j);
  CHECK(one.held == expected);
  CHECK(one.train.size() + one.held.size() == 100);

  // Four views a photo: photos 7, 15, ... are held back whole; every image is in one list, in order.
  std::vector<int64_t> views;
  for (int64_t p = 0; p < 40; ++p)
    for (int v = 0; v < 4; ++v) views.push_back(p);
  const SampleSplit four = split_sample(PhotoSample(views), 8);
  REQUIRE(four.held.size() == 5 * 4);
  for (size_t i = 0; i < four.held.size(); ++i) CHECK(four.held[i] == (7 + 8 * int64_t(i / 4)) * 4 + int64_t(i % 4));
  for (int64_t j : four.train) CHECK(views[j] % 8 != 7);
  CHECK(std::is_sorted(four.train.begin(), four.train.end()));
  CHECK(four.train.size() == 35 * 4);
}
