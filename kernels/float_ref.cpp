#include "float_ref.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "vectorize_clones.h"

namespace trit::ref {

std::vector<float> pack_conv_weights(const float* weights, int32_t o, int32_t i, int32_t kh, int32_t kw) {
  const int64_t taps = int64_t{i} * kh * kw;
  std::vector<float> packed(static_cast<size_t>(taps) * o);
  for (int32_t oc = 0; oc < o; ++oc)
    for (int64_t t = 0; t < taps; ++t) packed[t * o + oc] = weights[oc * taps + t];
  return packed;
}

// Summation order, fixed for every output element: bias, then the taps (i, ky, kx) ascending,
// padded taps skipped. The loops run over pixels and, innermost, over a block of output
// channels, which is what lets the compiler vectorize; the order above never changes, so
// results depend neither on the block size nor on how callers split [o_begin, o_end).
// TRIT_VECTORIZE_CLONES: the compiler also emits an AVX2 copy of the same scalar code, chosen at
// load time. It changes no result: there is no FMA contraction (ISO C++ mode) and no reduction
// is reassociated, so every machine computes the same bits.
TRIT_VECTORIZE_CLONES
void conv2d(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w,
            Activation act, float* out, Shape3 os, int32_t o_begin, int32_t o_end) {
  constexpr int32_t kBlock = 64;  // accumulators of one pixel, kept in L1 (or registers)
  const int64_t plane = int64_t{os.h} * os.w, in_plane = int64_t{is.h} * is.w;
  float acc[kBlock];
  for (int32_t ob = o_begin; ob < o_end; ob += kBlock) {
    const int32_t nb = std::min(kBlock, o_end - ob);
    for (int32_t y = 0; y < os.h; ++y)
      for (int32_t x = 0; x < os.w; ++x) {
        for (int32_t j = 0; j < nb; ++j) acc[j] = bias[ob + j];
        for (int32_t i = 0; i < is.c; ++i)
          for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
            const int32_t iy = y * w.stride_h - w.pad_top + ky;
            if (iy < 0 || iy >= is.h) continue;
            for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
              const int32_t ix = x * w.stride_w - w.pad_left + kx;
              if (ix < 0 || ix >= is.w) continue;
              const float a = in[i * in_plane + int64_t{iy} * is.w + ix];
              const float* wt = packed + ((int64_t{i} * w.kernel_h + ky) * w.kernel_w + kx) * os.c + ob;
              for (int32_t j = 0; j < nb; ++j) acc[j] += wt[j] * a;
            }
          }
        float* dst = out + ob * plane + int64_t{y} * os.w + x;
        for (int32_t j = 0; j < nb; ++j)
          dst[j * plane] = act == Activation::Relu ? std::max(acc[j], 0.0f) : acc[j];
      }
  }
}

TRIT_VECTORIZE_CLONES
void fully_connected(const float* in, int32_t k, const float* weights, const float* bias,
                     Activation act, float* out, int32_t o_begin, int32_t o_end) {
  for (int32_t o = o_begin; o < o_end; ++o) {
    const float* row = weights + int64_t{o} * k;
    float acc = 0.0f;
    for (int32_t j = 0; j < k; ++j) acc += row[j] * in[j];
    acc += bias[o];
    out[o] = act == Activation::Relu ? std::max(acc, 0.0f) : acc;
  }
}

void max_pool(const float* in, Shape3 is, const Window& w, float* out, Shape3 os) {
  for (int32_t c = 0; c < is.c; ++c)
    for (int32_t y = 0; y < os.h; ++y)
      for (int32_t x = 0; x < os.w; ++x) {
        float best = -std::numeric_limits<float>::infinity();
        for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
          const int32_t iy = y * w.stride_h - w.pad_top + ky;
          if (iy < 0 || iy >= is.h) continue;
          for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
            const int32_t ix = x * w.stride_w - w.pad_left + kx;
            if (ix < 0 || ix >= is.w) continue;
            best = std::max(best, in[(int64_t{c} * is.h + iy) * is.w + ix]);
          }
        }
        out[(int64_t{c} * os.h + y) * os.w + x] = best;  // pads < kernel: one tap is always inside
      }
}

int32_t average_pool_divisor(Shape3 is, const Window& w, bool count_include_pad, int32_t y, int32_t x) {
  int32_t count = 0;
  for (int32_t ky = 0; ky < w.kernel_h; ++ky)
    for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
      const int32_t iy = y * w.stride_h - w.pad_top + ky, ix = x * w.stride_w - w.pad_left + kx;
      const bool inside = iy >= 0 && iy < is.h && ix >= 0 && ix < is.w;
      // Taps past the padded extent (possible at the far edge) never count.
      const bool in_padded = iy < is.h + w.pad_bottom && ix < is.w + w.pad_right;
      count += inside || (count_include_pad && in_padded);
    }
  return count;
}

void average_pool(const float* in, Shape3 is, const Window& w, bool count_include_pad, float* out,
                  Shape3 os) {
  for (int32_t c = 0; c < is.c; ++c)
    for (int32_t y = 0; y < os.h; ++y)
      for (int32_t x = 0; x < os.w; ++x) {
        float sum = 0.0f;
        for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
          const int32_t iy = y * w.stride_h - w.pad_top + ky;
          for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
            const int32_t ix = x * w.stride_w - w.pad_left + kx;
            if (iy >= 0 && iy < is.h && ix >= 0 && ix < is.w) sum += in[(int64_t{c} * is.h + iy) * is.w + ix];
          }
        }
        out[(int64_t{c} * os.h + y) * os.w + x] = sum / static_cast<float>(average_pool_divisor(is, w, count_include_pad, y, x));
      }
}

void global_average_pool(const float* in, Shape3 is, float* out) {
  const int64_t plane = int64_t{is.h} * is.w;
  for (int32_t c = 0; c < is.c; ++c) {
    double sum = 0.0;
    for (int64_t j = 0; j < plane; ++j) sum += in[c * plane + j];
    out[c] = static_cast<float>(sum / static_cast<double>(plane));
  }
}

void add(const float* a, const float* b, int64_t n, Activation act, float* out) {
  for (int64_t j = 0; j < n; ++j) {
    const float v = a[j] + b[j];
    out[j] = act == Activation::Relu ? std::max(v, 0.0f) : v;
  }
}

void relu(const float* in, int64_t n, float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = std::max(in[j], 0.0f);
}

}  // namespace trit::ref
