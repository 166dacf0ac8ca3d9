#include "blas.h"

#include <cblas.h>
#include <tbb/parallel_for.h>

#include <algorithm>

namespace trit::blas {

void rows_times_weights(const float* a, int64_t m, int64_t k, const float* b, int64_t n, float* c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, a, static_cast<int>(k), b, static_cast<int>(k), 0.0f, c, static_cast<int>(n));
}

void inputs_times_targets(const float* a, int64_t m, int64_t k, const float* b, int64_t n, float* c) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(k), static_cast<int>(n), static_cast<int>(m),
              1.0f, a, static_cast<int>(k), b, static_cast<int>(n), 0.0f, c, static_cast<int>(n));
}

std::vector<double> gram(const float* a, int64_t m, int64_t k) {
  std::vector<float> hf(static_cast<size_t>(k * k), 0.0f);
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(k), static_cast<int>(m), 1.0f, a,
              static_cast<int>(k), 0.0f, hf.data(), static_cast<int>(k));
  std::vector<double> h(hf.size());
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) h[i * k + j] = h[j * k + i] = hf[i * k + j];
  return h;
}

SingleThreadedBlas::SingleThreadedBlas() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
SingleThreadedBlas::~SingleThreadedBlas() { openblas_set_num_threads(saved_); }

void dgemm_add(int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
               double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), 1.0, c, static_cast<int>(ldc));
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

}  // namespace

void im2col(Shape3 in, Shape3 out, const Window& w, const float* x, float* cols, int64_t stride) {
  for (int32_t c = 0; c < in.c; ++c) im2col_channel(in, out, w, x, c, cols, stride);
}

}  // namespace trit::blas
