#include "float_gemm.h"

#include <cblas.h>
#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <mutex>

namespace trit::blas {

void prepare_single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

namespace {

// The fixed partition of C [m][n] into the blocks gemm() runs: blocks of whole columns (or of
// whole rows when C has few columns), fixed by the shapes alone. OpenBLAS's result for an
// element can depend on the block it falls in (its edge kernels), so a split by thread count
// would change the bits.
struct Blocks {
  static constexpr int64_t kCols = 256, kRows = 64;
  int64_t m, n;
  bool by_cols() const { return n >= 2 * kCols || m < 2 * kRows; }
  int64_t count() const { return by_cols() ? (n + kCols - 1) / kCols : (m + kRows - 1) / kRows; }
  // Columns per block: n split evenly (a multiple of 4), so that the threads get equal shares.
  int64_t cols() const { return ((n + count() - 1) / count() + 3) / 4 * 4; }
  // C = op(A) op(B) + beta C on block `blk` alone, one single-threaded sgemm.
  void run(int64_t blk, bool trans_a, bool trans_b, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) const {
    const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
    int64_t m0 = 0, mb = m, n0 = 0, nb = n;
    if (by_cols()) {
      n0 = blk * cols();
      nb = std::min(cols(), n - n0);
      if (nb <= 0) return;  // (rounding the width up can leave the last block empty)
    } else {
      m0 = blk * kRows;
      mb = std::min(kRows, m - m0);
    }
    const float* ab = trans_a ? a + m0 : a + m0 * lda;
    const float* bb = trans_b ? b + n0 * ldb : b + n0;
    cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(mb), static_cast<int>(nb), static_cast<int>(k), 1.0f, ab,
                static_cast<int>(lda), bb, static_cast<int>(ldb), beta, c + m0 * ldc + n0, static_cast<int>(ldc));
  }
};

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  const Blocks blocks{m, n};
  tbb::parallel_for(int64_t{0}, blocks.count(),
                    [&](int64_t blk) { blocks.run(blk, trans_a, trans_b, k, a, lda, b, ldb, beta, c, ldc); });
}

std::pair<int32_t, int32_t> inside(int32_t out_w, int32_t in_w, int32_t stride, int32_t pad, int32_t kx) {
  auto floor_div = [](int32_t a, int32_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  // ix = ox * stride - pad + kx in [0, in_w)
  const int32_t lo = std::clamp(-floor_div(kx - pad, stride), 0, out_w);
  const int32_t hi = std::clamp(floor_div(in_w - 1 + pad - kx, stride) + 1, lo, out_w);
  return {lo, hi};
}

namespace {

// Channel c's rows of im2col.
void im2col_channel(Shape3 in, Shape3 out, const Window& w, const float* x, int32_t c, float* cols, int64_t stride) {
  for (int32_t ky = 0; ky < w.kernel_h; ++ky)
    for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
      float* row = cols + ((int64_t{c} * w.kernel_h + ky) * w.kernel_w + kx) * stride;
      const auto [ox0, ox1] = inside(out.w, in.w, w.stride_w, w.pad_left, kx);
      for (int32_t oy = 0; oy < out.h; ++oy) {
        float* dst = row + int64_t{oy} * out.w;
        const int32_t iy = oy * w.stride_h - w.pad_top + ky;
        if (iy < 0 || iy >= in.h) {
          std::fill_n(dst, out.w, 0.0f);
          continue;
        }
        std::fill_n(dst, ox0, 0.0f);
        const float* src = x + (int64_t{c} * in.h + iy) * in.w - w.pad_left + kx;
        if (w.stride_w == 1) std::copy(src + ox0, src + ox1, dst + ox0);
        else
          for (int32_t ox = ox0; ox < ox1; ++ox) dst[ox] = src[int64_t{ox} * w.stride_w];
        std::fill(dst + ox1, dst + out.w, 0.0f);
      }
    }
}

bool reads_in_place(const Window& w) {
  return w.kernel_h == 1 && w.kernel_w == 1 && w.stride_h == 1 && w.stride_w == 1 && w.pad_top == 0 &&
         w.pad_left == 0 && w.pad_bottom == 0 && w.pad_right == 0;
}

}  // namespace

void im2col(Shape3 in, Shape3 out, const Window& w, const float* x, float* cols, int64_t stride) {
  for (int32_t c = 0; c < in.c; ++c) im2col_channel(in, out, w, x, c, cols, stride);
}

int64_t conv2d_scratch(Shape3 in, Shape3 out, const Window& w, int32_t batch) {
  return reads_in_place(w) ? 0 : int64_t{in.c} * w.kernel_h * w.kernel_w * out.h * out.w * batch;
}

void conv2d(const float* x, Shape3 in, int32_t batch, const float* w, const float* bias, const Window& window,
            Activation act, float* y, Shape3 out, float* scratch) {
  const int64_t k = int64_t{in.c} * window.kernel_h * window.kernel_w, p_n = int64_t{out.h} * out.w;
  // Each image's columns [K][P] (or the image itself), then y = bias, then y += w cols, image by
  // image: an image's result never depends on the others in its batch.
  const bool in_place = reads_in_place(window);
  tbb::parallel_for(tbb::blocked_range2d<int32_t>(0, batch, 1, 0, std::max(in.c, out.c), 8),
                    [&](const tbb::blocked_range2d<int32_t>& r) {
                      for (int32_t im = r.rows().begin(); im < r.rows().end(); ++im)
                        for (int32_t c = r.cols().begin(); c < r.cols().end(); ++c) {
                          if (!in_place && c < in.c)
                            im2col_channel(in, out, window, x + im * in.size(), c, scratch + im * k * p_n, p_n);
                          if (c < out.c) std::fill_n(y + (int64_t{im} * out.c + c) * p_n, p_n, bias ? bias[c] : 0.0f);
                        }
                    });
  const Blocks blocks{out.c, p_n};
  tbb::parallel_for(tbb::blocked_range2d<int64_t>(0, batch, 1, 0, blocks.count(), 1),
                    [&](const tbb::blocked_range2d<int64_t>& r) {
                      for (int64_t im = r.rows().begin(); im < r.rows().end(); ++im)
                        for (int64_t blk = r.cols().begin(); blk < r.cols().end(); ++blk)
                          blocks.run(blk, false, false, k, w, k, in_place ? x + im * in.size() : scratch + im * k * p_n,
                                     p_n, 1.0f, y + im * out.size(), p_n);
                    });
  if (act == Activation::Relu)
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, int64_t{batch} * out.c, 16), [&](const tbb::blocked_range<int64_t>& r) {
      float* v = y + r.begin() * p_n;
      for (int64_t j = 0; j < (r.end() - r.begin()) * p_n; ++j) v[j] = std::max(v[j], 0.0f);
    });
}

void fully_connected(const float* x, int32_t batch, int32_t k, const float* w, const float* bias, Activation act,
                     float* y, int32_t o) {
  // One row of y per image (an image's result never depends on the others), then the bias.
  const Blocks blocks{1, o};
  tbb::parallel_for(tbb::blocked_range2d<int64_t>(0, batch, 1, 0, blocks.count(), 1),
                    [&](const tbb::blocked_range2d<int64_t>& r) {
                      for (int64_t im = r.rows().begin(); im < r.rows().end(); ++im)
                        for (int64_t blk = r.cols().begin(); blk < r.cols().end(); ++blk)
                          blocks.run(blk, false, true, k, x + im * k, k, w, k, 0.0f, y + im * o, o);
                    });
  for (int64_t j = 0; j < int64_t{batch} * o; ++j) {
    const float v = y[j] + (bias ? bias[j % o] : 0.0f);
    y[j] = act == Activation::Relu ? std::max(v, 0.0f) : v;
  }
}

}  // namespace trit::blas
