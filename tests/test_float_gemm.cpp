// The float fast path (runtime/float_gemm.h) against the float reference: within the error bound
// of a float sum in any order, and the same bits whatever the thread count.
#include <doctest/doctest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <random>
#include <vector>

#include "float_executor.h"
#include "float_gemm.h"
#include "float_ref.h"
#include "helpers.h"

using namespace trit;

namespace {

// Any order of summing n terms in float (fused or not) is within gamma(n) * sum |terms| of the
// exact sum (Higham, Accuracy and Stability, 3.1); two such sums within twice that of each other.
double bound(int64_t terms, double abs_sum) {
  const double u = std::ldexp(1.0, -24), g = terms * u / (1 - terms * u);
  return 2 * g * abs_sum;
}

std::vector<float> absolute(std::vector<float> v) {
  for (float& x : v) x = std::abs(x);
  return v;
}

struct ConvCase {
  Shape3 is, os;
  Window w;
  std::vector<float> in, weights, bias;
};

}  // namespace

TEST_CASE("the sgemm convolution is within a float sum's error bound of the reference") {
  std::mt19937 rng(5);
  const std::vector<Window> windows = test::conv_windows();
  int cases = 0;
  for (const int32_t o : {1, 9, 64, 130})
    for (const Window& w : windows)
      for (const int32_t batch : {1, 3}) {
        const int32_t c = 1 + 7 * (cases % 5), h = w.kernel_h + cases % 9, wd = w.kernel_w + cases % 13;
        const Shape3 is{c, h, wd}, os{o, w.out_h(h), w.out_w(wd)};
        const int64_t k = int64_t{c} * w.kernel_h * w.kernel_w;
        const auto in = test::random_floats(static_cast<size_t>(is.size() * batch), rng);
        const auto weights = test::random_floats(static_cast<size_t>(o * k), rng);
        const auto bias = test::random_floats(o, rng);
        const float* b = cases % 3 ? bias.data() : nullptr;  // null: no bias
        const Activation act = cases % 2 ? Activation::Relu : Activation::None;
        // The reference, and the sum of |terms| per output (the reference on |x|, |w|).
        const std::vector<float> zero(o, 0.0f);
        const auto packed = ref::pack_conv_weights(weights.data(), o, c, w.kernel_h, w.kernel_w);
        const auto abs_packed = ref::pack_conv_weights(absolute(weights).data(), o, c, w.kernel_h, w.kernel_w);
        const auto abs_in = absolute(in);
        std::vector<float> want(static_cast<size_t>(os.size() * batch)), mag(want.size());
        for (int32_t im = 0; im < batch; ++im) {
          ref::conv2d(in.data() + im * is.size(), is, packed.data(), b ? b : zero.data(), w, act,
                      want.data() + im * os.size(), os, 0, o);
          ref::conv2d(abs_in.data() + im * is.size(), is, abs_packed.data(), zero.data(), w, Activation::None,
                      mag.data() + im * os.size(), os, 0, o);
        }
        std::vector<float> scratch(static_cast<size_t>(blas::conv2d_scratch(is, os, w, batch)));
        std::vector<float> got(want.size(), NAN), got2(want.size(), NAN);
        tbb::task_arena(1).execute(
            [&] { blas::conv2d(in.data(), is, batch, weights.data(), b, w, act, got.data(), os, scratch.data()); });
        tbb::task_arena(2).execute(
            [&] { blas::conv2d(in.data(), is, batch, weights.data(), b, w, act, got2.data(), os, scratch.data()); });
        CAPTURE(o);
        CAPTURE(c);
        CAPTURE(h);
        CAPTURE(wd);
        CAPTURE(w.kernel_h);
        CAPTURE(w.stride_h);
        CAPTURE(batch);
        CHECK(got == got2);
        for (size_t j = 0; j < want.size(); ++j) {
          const double tol = bound(k + 1, mag[j] + (b ? std::abs(b[j / os.h / os.w % o]) : 0.0));
          if (!(std::abs(double{got[j]} - want[j]) <= tol)) {
            CAPTURE(j);
            CAPTURE(tol);
            REQUIRE(got[j] == want[j]);  // fails, printing both
          }
        }
        ++cases;
      }
  CHECK(cases == 56);
}

TEST_CASE("the sgemm fully connected layer is within a float sum's error bound of the reference") {
  std::mt19937 rng(6);
  const int32_t batch = 3, k = 300, o = 70;
  const auto in = test::random_floats(batch * k, rng);
  const auto weights = test::random_floats(o * k, rng);
  const auto bias = test::random_floats(o, rng);
  for (const Activation act : {Activation::None, Activation::Relu}) {
    std::vector<float> got(batch * o);
    blas::fully_connected(in.data(), batch, k, weights.data(), bias.data(), act, got.data(), o);
    std::vector<float> want(o), mag(o);
    const std::vector<float> zero(o, 0.0f);
    const auto abs_w = absolute(weights), abs_in = absolute(in);
    for (int32_t im = 0; im < batch; ++im) {
      ref::fully_connected(in.data() + im * k, k, weights.data(), bias.data(), act, want.data(), 0, o);
      ref::fully_connected(abs_in.data() + im * k, k, abs_w.data(), zero.data(), Activation::None, mag.data(), 0, o);
      for (int32_t j = 0; j < o; ++j)
        CHECK(std::abs(double{got[im * o + j]} - want[j]) <= bound(k + 1, mag[j] + std::abs(bias[j])));
    }
  }
}

TEST_CASE("the float executor's sgemm path: near the reference, the same bits for any thread count and batch") {
  auto g = std::make_shared<const Graph>(test::tiny_graph());
  const FloatExecutor ref_exec(g), fast(g, FloatPath::Gemm);
  CHECK(fast.path() == FloatPath::Gemm);
  std::mt19937 rng(8);
  const int64_t n = g->input().elements();
  const auto batch = test::random_floats(static_cast<size_t>(n) * 4, rng);
  const auto want = ref_exec.run(batch, 4);
  std::vector<float> one_thread, two_threads;
  tbb::task_arena(1).execute([&] { one_thread = fast.run(batch, 4); });
  tbb::task_arena(2).execute([&] { two_threads = fast.run(batch, 4); });
  CHECK(one_thread == two_threads);
  REQUIRE(one_thread.size() == want.size());
  for (int i = 0; i < 4; ++i) {
    const auto one = fast.run(std::span(batch).subspan(i * n, n), 1);
    CHECK(std::equal(one.begin(), one.end(), one_thread.begin() + i * 10));
  }
  float scale = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::abs(want[i]));
    worst = std::max(worst, std::abs(one_thread[i] - want[i]));
  }
  CHECK(scale > 0);
  CHECK(worst <= 1e-5f * scale);
}
