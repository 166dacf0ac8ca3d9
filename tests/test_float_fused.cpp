// The float fast path (kernels/float_nhwc.h, FloatPath::Fused) against the float reference:
// within the error bound of a float sum in any order; and the same bits on every kernel path,
// at every thread count and in every batch.
#include <doctest/doctest.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <random>
#include <vector>

#include "float_executor.h"
#include "float_nhwc.h"
#include "float_ref.h"
#include "helpers.h"
#include "int8/table.h"

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

// The kernel paths this CPU runs.
std::vector<const k8::KernelTable*> tables() {
  std::vector<const k8::KernelTable*> t;
  for (const k8::Isa isa : {k8::Isa::Ref, k8::Isa::Avx2, k8::Isa::Avx512Vnni})
    if (k8::isa_supported(isa)) t.push_back(&k8::table_for(isa));
  return t;
}

// One convolution on one path as the executor runs it: NHWC in and out, a padded copy, pieces
// of `piece` pixels x one block on the threads of the arena it is called in.
std::vector<float> fused_conv(const k8::KernelTable& table, const std::vector<float>& nchw, Shape3 is, int32_t batch,
                              const std::vector<float>& weights, const float* bias, const Window& w, Activation act,
                              const std::vector<float>* residual_nchw, Shape3 os, int64_t piece) {
  std::vector<float> in(nchw.size()), padded;
  k8::nchw_to_nhwc(nchw.data(), batch, is, in.data());
  const auto taps = k8::fma_taps(is, w);
  k8::FmaConv L = k8::fma_conv(is, os, w, taps);
  padded.resize(static_cast<size_t>(L.image_step * batch));
  for (int32_t im = 0; im < batch; ++im) k8::pad_nhwc(in.data() + im * is.size(), is, w, padded.data() + im * L.image_step);
  std::vector<float> residual;
  if (residual_nchw) {
    residual.resize(residual_nchw->size());
    k8::nchw_to_nhwc(residual_nchw->data(), batch, os, residual.data());
    L.residual = residual.data();
  }
  L.act = act;
  const auto packed = k8::pack_fma_weights(weights.data(), os.c, is.c, w.kernel_h, w.kernel_w, table.f32_block);
  const auto b = k8::pad_fma_bias(bias, os.c, table.f32_block);
  std::vector<float> out(static_cast<size_t>(os.size() * batch), NAN), nchw_out(out.size());
  const int64_t pixels = int64_t{batch} * L.pixels;
  const int32_t blocks = k8::fma_blocks(os.c, table.f32_block);
  tbb::parallel_for(int64_t{0}, (pixels + piece - 1) / piece, [&](int64_t j) {
    for (int32_t blk = 0; blk < blocks; ++blk)
      table.conv_f32_fma(L, padded.data(), packed.data(), b.data(), out.data(), j * piece, std::min(pixels, (j + 1) * piece),
                         blk, blk + 1);
  });
  k8::nhwc_to_nchw(out.data(), batch, os, nchw_out.data());
  return nchw_out;
}

}  // namespace

TEST_CASE("the fused convolution: within a float sum's error bound of the reference, the same bits on every path") {
  std::mt19937 rng(5);
  const std::vector<Window> windows = test::conv_windows();
  const auto paths = tables();
  REQUIRE(!paths.empty());
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
        const auto residual = test::random_floats(static_cast<size_t>(os.size() * batch), rng);
        const float* b = cases % 3 ? bias.data() : nullptr;  // null: no bias
        const bool add = cases % 4 == 1;                     // a fused residual add
        const Activation act = cases % 2 ? Activation::Relu : Activation::None;
        // The reference (convolution, then the add, then the activation), and the sum of |terms|
        // per output (the reference on |x|, |w|).
        const std::vector<float> zero(o, 0.0f);
        const auto packed = ref::pack_conv_weights(weights.data(), o, c, w.kernel_h, w.kernel_w);
        const auto abs_packed = ref::pack_conv_weights(absolute(weights).data(), o, c, w.kernel_h, w.kernel_w);
        const auto abs_in = absolute(in);
        std::vector<float> want(static_cast<size_t>(os.size() * batch)), mag(want.size());
        for (int32_t im = 0; im < batch; ++im) {
          float* y = want.data() + im * os.size();
          ref::conv2d(in.data() + im * is.size(), is, packed.data(), b ? b : zero.data(), w, add ? Activation::None : act, y,
                      os, 0, o);
          if (add) ref::add(y, residual.data() + im * os.size(), os.size(), act, y);
          ref::conv2d(abs_in.data() + im * is.size(), is, abs_packed.data(), zero.data(), w, Activation::None,
                      mag.data() + im * os.size(), os, 0, o);
        }
        CAPTURE(o);
        CAPTURE(c);
        CAPTURE(h);
        CAPTURE(wd);
        CAPTURE(w.kernel_h);
        CAPTURE(w.stride_h);
        CAPTURE(batch);
        CAPTURE(add);
        const auto* res = add ? &residual : nullptr;
        std::vector<float> first;
        for (const k8::KernelTable* table : paths) {
          CAPTURE(table->name);
          std::vector<float> got, got2;
          tbb::task_arena(1).execute([&] { got = fused_conv(*table, in, is, batch, weights, b, w, act, res, os, 1 << 20); });
          tbb::task_arena(2).execute([&] { got2 = fused_conv(*table, in, is, batch, weights, b, w, act, res, os, 5); });
          CHECK(got == got2);  // pieces of 5 pixels on 2 threads, or all at once on one
          if (first.empty()) first = got;
          CHECK(got == first);  // every path the same bits
          for (size_t j = 0; j < want.size(); ++j) {
            const double tol = bound(k + 2, mag[j] + (b ? std::abs(b[j / os.h / os.w % o]) : 0.0) + (add ? std::abs(residual[j]) : 0.0));
            if (!(std::abs(double{got[j]} - want[j]) <= tol)) {
              CAPTURE(j);
              CAPTURE(tol);
              REQUIRE(got[j] == want[j]);  // fails, printing both
            }
          }
        }
        ++cases;
      }
  CHECK(cases == 56);
}

TEST_CASE("the NHWC pools are the reference's bits") {
  std::mt19937 rng(7);
  const Shape3 is{19, 11, 9};
  const auto in = test::random_floats(static_cast<size_t>(is.size()), rng);
  std::vector<float> nhwc(in.size());
  k8::nchw_to_nhwc(in.data(), 1, is, nhwc.data());
  for (const Window& w : {Window{3, 3, 2, 2, 1, 1, 1, 1}, Window{2, 3, 1, 2, 0, 1, 1, 0}, Window{3, 3, 1, 1, 1, 1, 1, 1}})
    for (const bool include_pad : {false, true}) {
      const Shape3 os{is.c, w.out_h(is.h), w.out_w(is.w)};
      std::vector<float> want(static_cast<size_t>(os.size())), got(want.size()), back(want.size());
      ref::average_pool(in.data(), is, w, include_pad, want.data(), os);
      k8::average_pool_nhwc(nhwc.data(), is, w, include_pad, got.data(), os, 0, os.h);
      k8::nhwc_to_nchw(got.data(), 1, os, back.data());
      CHECK(back == want);
      ref::max_pool(in.data(), is, w, want.data(), os);
      k8::max_pool_nhwc(nhwc.data(), is, w, got.data(), os, 0, 2);  // two pieces of rows
      k8::max_pool_nhwc(nhwc.data(), is, w, got.data(), os, 2, os.h);
      k8::nhwc_to_nchw(got.data(), 1, os, back.data());
      CHECK(back == want);
    }
  std::vector<float> want(is.c), got(is.c);
  ref::global_average_pool(in.data(), is, want.data());
  k8::global_average_pool_nhwc(nhwc.data(), is, got.data());
  CHECK(got == want);
}

TEST_CASE("the float executor's fused path: near the reference, the same bits for any path, thread count and batch") {
  auto g = std::make_shared<const Graph>(test::tiny_graph());
  const FloatExecutor ref_exec(g);
  std::mt19937 rng(8);
  const int64_t n = g->input().elements();
  const auto batch = test::random_floats(static_cast<size_t>(n) * 4, rng);
  const auto want = ref_exec.run(batch, 4);
  std::vector<float> first;
  for (const k8::KernelTable* table : tables()) {
    CAPTURE(table->name);
    const FloatExecutor fast(g, FloatPath::Fused, table->isa);
    CHECK(fast.path() == FloatPath::Fused);
    std::vector<float> one_thread, two_threads;
    tbb::task_arena(1).execute([&] { one_thread = fast.run(batch, 4); });
    tbb::task_arena(2).execute([&] { two_threads = fast.run(batch, 4); });
    CHECK(one_thread == two_threads);
    if (first.empty()) first = one_thread;
    CHECK(one_thread == first);
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
}
