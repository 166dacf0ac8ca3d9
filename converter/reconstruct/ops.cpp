#include "ops.h"

#include <cblas.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "blas.h"
#include "vectorize_clones.h"

namespace trit::recon {
namespace {

// dx += the columns' gradients (rows at cols + r * stride) scattered back to the image.
void col2im(const ConvShape& s, const float* cols, int64_t stride, float* dx) {
  const Window& w = s.window;
  for (int32_t c = 0; c < s.in.c; ++c)
    for (int32_t ky = 0; ky < w.kernel_h; ++ky)
      for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
        const float* row = cols + ((int64_t{c} * w.kernel_h + ky) * w.kernel_w + kx) * stride;
        const auto [ox0, ox1] = blas::inside(s.out.w, s.in.w, w.stride_w, w.pad_left, kx);
        for (int32_t oy = 0; oy < s.out.h; ++oy) {
          const int32_t iy = oy * w.stride_h - w.pad_top + ky;
          if (iy < 0 || iy >= s.in.h) continue;
          const float* src = row + int64_t{oy} * s.out.w;
          float* dst = dx + (int64_t{c} * s.in.h + iy) * s.in.w - w.pad_left + kx;
          for (int32_t ox = ox0; ox < ox1; ++ox) dst[int64_t{ox} * w.stride_w] += src[ox];
        }
      }
}

// The batch's columns: [K][N * P], image n's pixels at columns [n * P, (n + 1) * P).
void batch_im2col(const ConvShape& s, const float* x, int32_t batch, float* cols) {
  const int64_t p_n = int64_t{s.out.h} * s.out.w, width = p_n * batch;
  tbb::parallel_for(0, batch, [&](int32_t im) { blas::im2col(s.in, s.out, s.window, x + im * s.in.size(), cols + im * p_n, width); });
}

// The product's [O][N * P] layout from y [N][O][P].
void gather_images(const float* y, int64_t o_n, int64_t p_n, int32_t batch, float* prod) {
  tbb::parallel_for(0, batch, [&](int32_t im) {
    for (int64_t o = 0; o < o_n; ++o) std::copy_n(y + (im * o_n + o) * p_n, p_n, prod + o * p_n * batch + im * p_n);
  });
}

// Memory for a product's operands, left uninitialized (every element is written before it is read).
std::unique_ptr<float[]> buffer(int64_t n) { return std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n)); }

}  // namespace

// One sgemm for the whole batch (the columns of all images side by side).
void conv_forward(const ConvShape& s, const float* x, int32_t batch, const float* w, const float* b, float* y) {
  const int64_t k = s.k(), p_n = int64_t{s.out.h} * s.out.w, o_n = s.out.c, width = p_n * batch;
  const auto cols = buffer(k * width), prod = buffer(o_n * width);
  batch_im2col(s, x, batch, cols.get());
  blas::gemm(false, false, o_n, width, k, w, k, cols.get(), width, 0.0f, prod.get(), width);
  tbb::parallel_for(0, batch, [&](int32_t im) {
    for (int64_t o = 0; o < o_n; ++o) {
      const float* src = prod.get() + o * width + im * p_n;
      float* dst = y + (im * o_n + o) * p_n;
      const float bo = b ? b[o] : 0.0f;
      for (int64_t p = 0; p < p_n; ++p) dst[p] = src[p] + bo;
    }
  });
}

void conv_backward(const ConvShape& s, const float* x, int32_t batch, const float* w, const float* dy, float* dx, float* dw,
                   float* db) {
  const int64_t k = s.k(), p_n = int64_t{s.out.h} * s.out.w, o_n = s.out.c, width = p_n * batch;
  const auto cols = buffer(k * width), dprod = buffer(o_n * width);
  gather_images(dy, o_n, p_n, batch, dprod.get());
  if (db)
    for (int64_t o = 0; o < o_n; ++o) {
      double sum = 0;
      for (int64_t p = 0; p < width; ++p) sum += dprod[o * width + p];
      db[o] += static_cast<float>(sum);
    }
  if (dw) {
    // dw [O][K] += dy [O][NP] * cols^T [NP][K]
    batch_im2col(s, x, batch, cols.get());
    blas::gemm(false, true, o_n, k, width, dprod.get(), width, cols.get(), width, 1.0f, dw, k);
  }
  if (!dx) return;
  // dcols [K][NP] = w^T [K][O] * dy [O][NP], scattered back to each image.
  blas::gemm(true, false, k, width, o_n, w, k, dprod.get(), width, 0.0f, cols.get(), width);
  tbb::parallel_for(0, batch, [&](int32_t im) { col2im(s, cols.get() + im * p_n, width, dx + im * s.in.size()); });
}

namespace {

// The quantized elements of activate over [begin, end): branch-free, so that it vectorizes
// (SSE2 here, AVX2 in the clone).
TRIT_VECTORIZE_CLONES
void quantize_range(const float* z, int64_t begin, int64_t end, float up, float down, float flo, float fhi, float* q,
                    uint8_t* pass) {
  for (int64_t j = begin; j < end; ++j) {
    const float scaled = z[j] * up;
    // floor(scaled + 1/2) clamped to [lo, hi]: clamp first (lo, hi are integers, so the floor
    // of the clamped value is the clamped floor), then floor as truncation less one below it.
    float t = scaled + 0.5f;
    t = t < flo ? flo : t;
    t = fhi < t ? fhi : t;
    const auto i = static_cast<int32_t>(t);
    q[j] = static_cast<float>(i - (t < static_cast<float>(i) ? 1 : 0)) * down;
    pass[j] = static_cast<uint8_t>((scaled >= flo) & (scaled <= fhi));
  }
}

}  // namespace

void activate(const float* z, int64_t n, int32_t f, int32_t lo, int32_t hi, bool relu, const uint64_t* keep, float* q,
              uint8_t* pass) {
  const float up = std::ldexp(1.0f, f), down = std::ldexp(1.0f, -f);
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 16384), [&](const tbb::blocked_range<int64_t>& range) {
    quantize_range(z, range.begin(), range.end(), up, down, flo, fhi, q, pass);
    if (!keep) return;
    for (int64_t j = range.begin(); j < range.end(); ++j)
      if (keep[j >> 6] >> (j & 63) & 1) {  // QDrop: this element stays in float
        q[j] = relu ? std::max(z[j], 0.0f) : z[j];
        pass[j] = !relu || z[j] > 0;
      }
  });
}

void activate_backward(const float* dq, const uint8_t* pass, int64_t n, float* dz) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 16384), [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t j = range.begin(); j < range.end(); ++j) {
      const float g = dq[j];  // read whatever pass says: a select, not a branch
      dz[j] = pass[j] ? g : 0.0f;
    }
  });
}

void random_bits(uint64_t seed, int64_t n, double p, uint64_t* bits) {
  // A hash below p * 2^64 sets the bit; where that is 2^64 (p = 1, or within a double's rounding
  // of it), every bit is set.
  const double scaled = std::ldexp(std::clamp(p, 0.0, 1.0), 64);
  const bool all = scaled >= std::ldexp(1.0, 64);
  const uint64_t threshold = all ? 0 : static_cast<uint64_t>(scaled);
  const int64_t words = (n + 63) / 64;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, words, 64), [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t i = range.begin(); i < range.end(); ++i) {
      uint64_t word = 0;
      for (int64_t b = 0; b < 64 && i * 64 + b < n; ++b) {
        uint64_t x = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i * 64 + b + 1);  // splitmix64
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        x ^= x >> 31;
        word |= uint64_t{all || x < threshold} << b;
      }
      bits[i] = word;
    }
  });
}

}  // namespace trit::recon
