#include "ops.h"

#include <cblas.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

namespace trit::recon {
namespace {

// The kernel column kx's output pixels that read inside the input along x: [ox0, ox1).
std::pair<int32_t, int32_t> inside(int32_t out_w, int32_t in_w, int32_t stride, int32_t pad, int32_t kx) {
  auto floor_div = [](int32_t a, int32_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  // ix = ox * stride - pad + kx in [0, in_w)
  const int32_t lo = std::clamp(-floor_div(kx - pad, stride), 0, out_w);
  const int32_t hi = std::clamp(floor_div(in_w - 1 + pad - kx, stride) + 1, lo, out_w);
  return {lo, hi};
}

// The columns of one image: row r = (c, ky, kx) holds the P = OH * OW taps of the output
// pixels, at cols + r * stride (padded taps 0).
void im2col(const ConvShape& s, const float* x, float* cols, int64_t stride) {
  const Window& w = s.window;
  for (int32_t c = 0; c < s.in.c; ++c)
    for (int32_t ky = 0; ky < w.kernel_h; ++ky)
      for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
        float* row = cols + ((int64_t{c} * w.kernel_h + ky) * w.kernel_w + kx) * stride;
        const auto [ox0, ox1] = inside(s.out.w, s.in.w, w.stride_w, w.pad_left, kx);
        for (int32_t oy = 0; oy < s.out.h; ++oy) {
          float* dst = row + int64_t{oy} * s.out.w;
          const int32_t iy = oy * w.stride_h - w.pad_top + ky;
          if (iy < 0 || iy >= s.in.h) {
            std::fill_n(dst, s.out.w, 0.0f);
            continue;
          }
          std::fill_n(dst, ox0, 0.0f);
          const float* src = x + (int64_t{c} * s.in.h + iy) * s.in.w - w.pad_left + kx;
          if (w.stride_w == 1) std::copy(src + ox0, src + ox1, dst + ox0);
          else
            for (int32_t ox = ox0; ox < ox1; ++ox) dst[ox] = src[int64_t{ox} * w.stride_w];
          std::fill(dst + ox1, dst + s.out.w, 0.0f);
        }
      }
}

// dx += the columns' gradients (rows at cols + r * stride) scattered back to the image.
void col2im(const ConvShape& s, const float* cols, int64_t stride, float* dx) {
  const Window& w = s.window;
  for (int32_t c = 0; c < s.in.c; ++c)
    for (int32_t ky = 0; ky < w.kernel_h; ++ky)
      for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
        const float* row = cols + ((int64_t{c} * w.kernel_h + ky) * w.kernel_w + kx) * stride;
        const auto [ox0, ox1] = inside(s.out.w, s.in.w, w.stride_w, w.pad_left, kx);
        for (int32_t oy = 0; oy < s.out.h; ++oy) {
          const int32_t iy = oy * w.stride_h - w.pad_top + ky;
          if (iy < 0 || iy >= s.in.h) continue;
          const float* src = row + int64_t{oy} * s.out.w;
          float* dst = dx + (int64_t{c} * s.in.h + iy) * s.in.w - w.pad_left + kx;
          for (int32_t ox = ox0; ox < ox1; ++ox) dst[int64_t{ox} * w.stride_w] += src[ox];
        }
      }
}

// C = op(A) op(B) + beta C, split into blocks of C's columns (or of its rows when it has few
// columns), one single-threaded sgemm each on oneTBB's threads: every element of C is the same
// one sgemm computes, whatever the threads. (OpenBLAS's own threads would spin beside oneTBB's.)
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  constexpr int64_t kBlock = 512;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  if (n >= 2 * kBlock || m < 2 * 64) {
    tbb::parallel_for(int64_t{0}, (n + kBlock - 1) / kBlock, [&](int64_t blk) {
      const int64_t n0 = blk * kBlock, nb = std::min(kBlock, n - n0);
      const float* bb = trans_b ? b + n0 * ldb : b + n0;
      cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(m), static_cast<int>(nb), static_cast<int>(k), 1.0f, a,
                  static_cast<int>(lda), bb, static_cast<int>(ldb), beta, c + n0, static_cast<int>(ldc));
    });
    return;
  }
  tbb::parallel_for(int64_t{0}, (m + 63) / 64, [&](int64_t blk) {
    const int64_t m0 = blk * 64, mb = std::min<int64_t>(64, m - m0);
    const float* ab = trans_a ? a + m0 : a + m0 * lda;
    cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(mb), static_cast<int>(n), static_cast<int>(k), 1.0f, ab,
                static_cast<int>(lda), b, static_cast<int>(ldb), beta, c + m0 * ldc, static_cast<int>(ldc));
  });
}

// The batch's columns: [K][N * P], image n's pixels at columns [n * P, (n + 1) * P).
void batch_im2col(const ConvShape& s, const float* x, int32_t batch, float* cols) {
  const int64_t p_n = int64_t{s.out.h} * s.out.w, width = p_n * batch;
  tbb::parallel_for(0, batch, [&](int32_t im) { im2col(s, x + im * s.in.size(), cols + im * p_n, width); });
}

// y [N][O][P] from the product's [O][N * P] layout, and back.
void scatter_images(const float* prod, const float* bias, int64_t o_n, int64_t p_n, int32_t batch, float* y) {
  tbb::parallel_for(0, batch, [&](int32_t im) {
    for (int64_t o = 0; o < o_n; ++o) {
      const float* src = prod + o * p_n * batch + im * p_n;
      float* dst = y + (im * o_n + o) * p_n;
      const float b = bias ? bias[o] : 0.0f;
      for (int64_t p = 0; p < p_n; ++p) dst[p] = src[p] + b;
    }
  });
}
void gather_images(const float* y, int64_t o_n, int64_t p_n, int32_t batch, float* prod) {
  tbb::parallel_for(0, batch, [&](int32_t im) {
    for (int64_t o = 0; o < o_n; ++o) std::copy_n(y + (im * o_n + o) * p_n, p_n, prod + o * p_n * batch + im * p_n);
  });
}

// Memory for a product's operands, left uninitialized (every element is written before it is read).
std::unique_ptr<float[]> buffer(int64_t n) { return std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n)); }

}  // namespace

// One sgemm for the whole batch: the columns of all images side by side.
void conv_forward(const ConvShape& s, const float* x, int32_t batch, const float* w, const float* b, float* y) {
  const int64_t k = s.k(), p_n = int64_t{s.out.h} * s.out.w, o_n = s.out.c, width = p_n * batch;
  const auto cols = buffer(k * width), prod = buffer(o_n * width);
  batch_im2col(s, x, batch, cols.get());
  gemm(false, false, o_n, width, k, w, k, cols.get(), width, 0.0f, prod.get(), width);
  scatter_images(prod.get(), b, o_n, p_n, batch, y);
}

void conv_backward(const ConvShape& s, const float* x, int32_t batch, const float* w, const float* dy, float* dx, float* dw,
                   float* db) {
  const int64_t k = s.k(), p_n = int64_t{s.out.h} * s.out.w, o_n = s.out.c, width = p_n * batch;
  const auto cols = buffer(k * width), dprod = buffer(o_n * width);
  batch_im2col(s, x, batch, cols.get());
  gather_images(dy, o_n, p_n, batch, dprod.get());
  if (db)
    for (int64_t o = 0; o < o_n; ++o) {
      double sum = 0;
      for (int64_t p = 0; p < width; ++p) sum += dprod[o * width + p];
      db[o] += static_cast<float>(sum);
    }
  // dw [O][K] += dy [O][NP] * cols^T [NP][K]
  gemm(false, true, o_n, k, width, dprod.get(), width, cols.get(), width, 1.0f, dw, k);
  if (!dx) return;
  // dcols [K][NP] = w^T [K][O] * dy [O][NP], scattered back to each image.
  gemm(true, false, k, width, o_n, w, k, dprod.get(), width, 0.0f, cols.get(), width);
  tbb::parallel_for(0, batch, [&](int32_t im) { col2im(s, cols.get() + im * p_n, width, dx + im * s.in.size()); });
}

void activate(const float* z, int64_t n, int32_t f, int32_t lo, int32_t hi, bool relu, const uint64_t* keep, float* q,
              uint8_t* pass) {
  const float up = std::ldexp(1.0f, f), down = std::ldexp(1.0f, -f);
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 16384), [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t j = range.begin(); j < range.end(); ++j) {
      const float v = z[j];
      if (keep && (keep[j >> 6] >> (j & 63) & 1)) {
        q[j] = relu ? std::max(v, 0.0f) : v;
        pass[j] = !relu || v > 0;
        continue;
      }
      const float scaled = v * up;
      // floor(scaled + 1/2) clamped to [lo, hi]: clamp first (lo, hi are integers, so the floor
      // of the clamped value is the clamped floor), then floor as truncation less one below it.
      const float t = std::clamp(scaled + 0.5f, flo, fhi);
      const auto i = static_cast<int32_t>(t);
      q[j] = static_cast<float>(i - (t < static_cast<float>(i))) * down;
      pass[j] = scaled >= flo && scaled <= fhi;
    }
  });
}

void activate_backward(const float* dq, const uint8_t* pass, int64_t n, float* dz) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 16384), [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t j = range.begin(); j < range.end(); ++j) dz[j] = pass[j] ? dq[j] : 0.0f;
  });
}

void random_bits(uint64_t seed, int64_t n, uint64_t* bits) {
  const int64_t words = (n + 63) / 64;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, words, 4096), [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t i = range.begin(); i < range.end(); ++i) {
      uint64_t x = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1);  // splitmix64
      x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
      x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
      bits[i] = x ^ (x >> 31);
    }
  });
}

}  // namespace trit::recon
