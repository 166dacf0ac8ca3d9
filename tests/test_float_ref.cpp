// The float reference kernels against values computed by hand, and against the equation itself.
#include <doctest/doctest.h>

#include <memory>

#include <tbb/task_arena.h>

#include "float_ref.h"
#include "helpers.h"
#include "trit/error.h"
#include "float_executor.h"

using namespace trit;

namespace {

const std::vector<float> k3x3 = {1, 2, 3, 4, 5, 6, 7, 8, 9};

std::vector<float> conv(const std::vector<float>& in, Shape3 is, const std::vector<float>& w, int32_t o,
                        const std::vector<float>& bias, const Window& win, Activation act = Activation::None) {
  const Shape3 os{o, win.out_h(is.h), win.out_w(is.w)};
  std::vector<float> out(os.size());
  const auto packed = ref::pack_conv_weights(w.data(), o, is.c, win.kernel_h, win.kernel_w);
  ref::conv2d(in.data(), is, packed.data(), bias.data(), win, act, out.data(), os, 0, o);
  return out;
}

}  // namespace

TEST_CASE("conv2d with asymmetric pads, by hand") {
  // Input 1..9 in 3x3; kernel [[1, 2], [3, 4]]; pads top 1, left 0, bottom 0, right 1.
  const Window w{2, 2, 1, 1, /*top*/ 1, /*left*/ 0, /*bottom*/ 0, /*right*/ 1};
  const auto out = conv(k3x3, {1, 3, 3}, {1, 2, 3, 4}, 1, {0.5f}, w);
  CHECK(out == std::vector<float>{11.5f, 18.5f, 9.5f, 37.5f, 47.5f, 21.5f, 67.5f, 77.5f, 33.5f});
}

TEST_CASE("conv2d with stride 2 and pads on the other sides, by hand") {
  // Kernel of ones; pads top 0, left 1, bottom 1, right 0; stride 2: windows over padded rows
  // {0,1},{2,pad} and columns {pad,0},{1,2}.
  const Window w{2, 2, 2, 2, 0, 1, 1, 0};
  CHECK(conv(k3x3, {1, 3, 3}, {1, 1, 1, 1}, 1, {0.0f}, w) == std::vector<float>{5, 16, 7, 17});
  // Two output channels, ReLU: the second (weights -1) goes to zero.
  const auto two = conv(k3x3, {1, 3, 3}, {1, 1, 1, 1, -1, -1, -1, -1}, 2, {0.0f, 0.0f}, w, Activation::Relu);
  CHECK(two == std::vector<float>{5, 16, 7, 17, 0, 0, 0, 0});
}

TEST_CASE("conv2d equals its equation on a sweep of shapes, whatever the split of channels") {
  std::mt19937 rng(42);
  for (int32_t c : {1, 3, 17})
    for (int32_t o : {1, 8, 63, 64, 70})
      for (const Window& w : {Window{1, 1, 1, 1, 0, 0, 0, 0}, Window{1, 1, 2, 2, 0, 0, 0, 0},
                              Window{3, 3, 1, 1, 1, 1, 1, 1}, Window{3, 3, 2, 2, 0, 0, 1, 1},
                              Window{7, 7, 2, 2, 3, 3, 3, 3}, Window{3, 2, 1, 2, 2, 0, 1, 1}}) {
        const Shape3 is{c, 9, 11};
        const Shape3 os{o, w.out_h(is.h), w.out_w(is.w)};
        const auto in = test::random_floats(is.size(), rng);
        const auto wt = test::random_floats(static_cast<size_t>(o) * c * w.kernel_h * w.kernel_w, rng);
        const auto bias = test::random_floats(o, rng);
        // The equation, in the documented order: bias, then i, ky, kx ascending, pads skipped.
        std::vector<float> want(os.size());
        for (int32_t oc = 0; oc < o; ++oc)
          for (int32_t y = 0; y < os.h; ++y)
            for (int32_t x = 0; x < os.w; ++x) {
              float acc = bias[oc];
              for (int32_t i = 0; i < c; ++i)
                for (int32_t ky = 0; ky < w.kernel_h; ++ky)
                  for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
                    const int32_t iy = y * w.stride_h - w.pad_top + ky, ix = x * w.stride_w - w.pad_left + kx;
                    if (iy < 0 || iy >= is.h || ix < 0 || ix >= is.w) continue;
                    acc += wt[((oc * c + i) * w.kernel_h + ky) * w.kernel_w + kx] * in[(i * is.h + iy) * is.w + ix];
                  }
              want[(oc * os.h + y) * os.w + x] = acc;
            }
        CAPTURE(c);
        CAPTURE(o);
        CAPTURE(w.kernel_h);
        CAPTURE(w.stride_h);
        const auto packed = ref::pack_conv_weights(wt.data(), o, c, w.kernel_h, w.kernel_w);
        std::vector<float> got(os.size(), -1.0f);
        // Split the output channels unevenly, as a thread pool might.
        for (int32_t begin = 0; begin < o; begin += 5)
          ref::conv2d(in.data(), is, packed.data(), bias.data(), w, Activation::None, got.data(), os, begin,
                      std::min(begin + 5, o));
        for (size_t j = 0; j < want.size(); ++j) {
          if (got[j] != want[j]) {
            FAIL("index " << j << ": expected " << want[j] << ", got " << got[j]);
          }
        }
      }
}

TEST_CASE("pools, by hand") {
  const Shape3 is{1, 3, 3};
  const Window w{2, 2, 2, 2, 0, 0, 1, 1};  // pad bottom and right
  const Shape3 os{1, 2, 2};
  std::vector<float> out(4);
  ref::max_pool(k3x3.data(), is, w, out.data(), os);
  CHECK(out == std::vector<float>{5, 6, 8, 9});
  // Padding never wins, even over negative values.
  const std::vector<float> neg(9, -1.0f);
  ref::max_pool(neg.data(), is, w, out.data(), os);
  CHECK(out == std::vector<float>{-1, -1, -1, -1});
  ref::average_pool(k3x3.data(), is, w, false, out.data(), os);
  CHECK(out == std::vector<float>{3, 4.5f, 7.5f, 9});
  ref::average_pool(k3x3.data(), is, w, true, out.data(), os);
  CHECK(out == std::vector<float>{3, 2.25f, 3.75f, 2.25f});
  std::vector<float> mean(1);
  ref::global_average_pool(k3x3.data(), is, mean.data());
  CHECK(mean[0] == 5.0f);
}

TEST_CASE("fully connected, add and relu, by hand") {
  const std::vector<float> in{1, -2, 3};
  const std::vector<float> w{1, 1, 1, 2, 0, -1};
  const std::vector<float> b{0.5f, -10.0f};
  std::vector<float> out(2);
  ref::fully_connected(in.data(), 3, w.data(), b.data(), Activation::None, out.data(), 0, 2);
  CHECK(out == std::vector<float>{2.5f, -11.0f});
  ref::fully_connected(in.data(), 3, w.data(), b.data(), Activation::Relu, out.data(), 0, 2);
  CHECK(out == std::vector<float>{2.5f, 0.0f});
  std::vector<float> sum(3);
  ref::add(in.data(), in.data(), 3, Activation::Relu, sum.data());
  CHECK(sum == std::vector<float>{2, 0, 6});
  ref::relu(in.data(), 3, sum.data());
  CHECK(sum == std::vector<float>{1, 0, 3});
}

TEST_CASE("the executor gives the same bits for any batch and thread count") {
  auto g = std::make_shared<const Graph>(test::tiny_graph());
  const FloatExecutor exec(g);
  std::mt19937 rng(3);
  const int64_t n = g->input().elements();
  const auto batch = test::random_floats(static_cast<size_t>(n) * 4, rng);
  const auto all = exec.run(batch, 4);
  for (int i = 0; i < 4; ++i) {
    const auto one = exec.run(std::span(batch).subspan(i * n, n), 1);
    CHECK(std::equal(one.begin(), one.end(), all.begin() + i * 10));
  }
  std::vector<float> one_thread, two_threads;
  tbb::task_arena(1).execute([&] { one_thread = exec.run(batch, 4); });
  tbb::task_arena(2).execute([&] { two_threads = exec.run(batch, 4); });
  CHECK(one_thread == all);
  CHECK(two_threads == all);
  CHECK_THROWS_WITH_AS(exec.run(batch, 3), doctest::Contains("for a batch of 3 images"), Error);
}
