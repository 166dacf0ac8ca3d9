#include "int_ref.h"

#include <algorithm>
#include <limits>

#include "float_ref.h"
#include "requant.h"
#include "vectorize_clones.h"
#include "trit/weight_codes.h"

namespace trit::iref {

void conv2d_clusters(const int32_t* in, Shape3 is, const LayerWeights& lw, const Window& w, const Requant& rq,
                     int32_t* out, Shape3 os) {
  const WeightLayout& wt = lw.layout;
  const bool per_channel = wt.encoding == WeightEncoding::Int8PerChannel;
  const int32_t n = per_channel ? is.c : wt.cluster_size;
  const int32_t groups = (is.c + n - 1) / n;  // clusters along the input channels
  const bool kernels = per_channel || wt.cluster_shape == ClusterShape::Kernels;
  auto code = [&](int32_t o, int32_t i, int32_t ky, int32_t kx) {
    return int32_t{lw.codes[((int64_t{o} * is.c + i) * w.kernel_h + ky) * w.kernel_w + kx]};
  };
  auto input = [&](int32_t i, int32_t y, int32_t x, int32_t ky, int32_t kx, int32_t& a) {
    const int32_t iy = y * w.stride_h - w.pad_top + ky, ix = x * w.stride_w - w.pad_left + kx;
    if (iy < 0 || iy >= is.h || ix < 0 || ix >= is.w) return false;  // zero padding
    a = in[(int64_t{i} * is.h + iy) * is.w + ix];
    return true;
  };
  for (int32_t o = 0; o < os.c; ++o)
    for (int32_t y = 0; y < os.h; ++y)
      for (int32_t x = 0; x < os.w; ++x) {
        int32_t acc = 0;
        for (int32_t g = 0; g < groups; ++g) {
          const int32_t i0 = g * n, i1 = std::min(i0 + n, is.c);
          if (kernels) {  // one cluster: channels [i0, i1) x every tap
            int32_t s = 0, a = 0;
            for (int32_t i = i0; i < i1; ++i)
              for (int32_t ky = 0; ky < w.kernel_h; ++ky)
                for (int32_t kx = 0; kx < w.kernel_w; ++kx)
                  if (input(i, y, x, ky, kx, a)) s += code(o, i, ky, kx) * a;
            acc += (per_channel ? 1 : int32_t{lw.scales[cluster_of(wt, o, i0, 0, 0)]}) * s;
          } else {  // one cluster per tap: channels [i0, i1) at (ky, kx)
            for (int32_t ky = 0; ky < w.kernel_h; ++ky)
              for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
                int32_t s = 0, a = 0;
                for (int32_t i = i0; i < i1; ++i)
                  if (input(i, y, x, ky, kx, a)) s += code(o, i, ky, kx) * a;
                acc += int32_t{lw.scales[cluster_of(wt, o, i0, ky, kx)]} * s;
              }
          }
        }
        out[(int64_t{o} * os.h + y) * os.w + x] =
            rq::requantize(acc, rq.multiplier[o], rq.bias[o], rq.shift[o], rq.lo, rq.hi);
      }
}

std::vector<int16_t> expand_weights(const LayerWeights& lw) {
  const WeightLayout& wt = lw.layout;
  const auto [o_n, i_n, kh, kw] = wt.shape;
  std::vector<int16_t> packed(static_cast<size_t>(wt.count()));
  const bool per_channel = wt.encoding == WeightEncoding::Int8PerChannel;
  for (int32_t o = 0; o < o_n; ++o)
    for (int32_t i = 0; i < i_n; ++i)
      for (int32_t ky = 0; ky < kh; ++ky)
        for (int32_t kx = 0; kx < kw; ++kx) {
          const int32_t c = lw.codes[((int64_t{o} * i_n + i) * kh + ky) * kw + kx];
          const int32_t scale = per_channel ? 1 : lw.scales[cluster_of(wt, o, i, ky, kx)];
          packed[((int64_t{i} * kh + ky) * kw + kx) * o_n + o] = static_cast<int16_t>(c * scale);
        }
  return packed;
}

TRIT_VECTORIZE_CLONES
void conv2d(const int32_t* in, Shape3 is, const int16_t* packed, const Window& w, const Requant& rq, int32_t* out,
            Shape3 os, int32_t o_begin, int32_t o_end) {
  constexpr int32_t kBlock = 64;
  const int64_t plane = int64_t{os.h} * os.w, in_plane = int64_t{is.h} * is.w;
  int32_t acc[kBlock];
  for (int32_t ob = o_begin; ob < o_end; ob += kBlock) {
    const int32_t nb = std::min(kBlock, o_end - ob);
    for (int32_t y = 0; y < os.h; ++y)
      for (int32_t x = 0; x < os.w; ++x) {
        std::fill_n(acc, nb, 0);
        for (int32_t i = 0; i < is.c; ++i)
          for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
            const int32_t iy = y * w.stride_h - w.pad_top + ky;
            if (iy < 0 || iy >= is.h) continue;
            for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
              const int32_t ix = x * w.stride_w - w.pad_left + kx;
              if (ix < 0 || ix >= is.w) continue;
              const int32_t a = in[i * in_plane + int64_t{iy} * is.w + ix];
              const int16_t* wt = packed + ((int64_t{i} * w.kernel_h + ky) * w.kernel_w + kx) * os.c + ob;
              for (int32_t j = 0; j < nb; ++j) acc[j] += wt[j] * a;
            }
          }
        int32_t* dst = out + ob * plane + int64_t{y} * os.w + x;
        for (int32_t j = 0; j < nb; ++j) {
          const int32_t o = ob + j;
          dst[j * plane] = rq::requantize(acc[j], rq.multiplier[o], rq.bias[o], rq.shift[o], rq.lo, rq.hi);
        }
      }
  }
}

void add(const int32_t* a, int32_t fa, const int32_t* b, int32_t fb, int64_t n, int32_t fo, int32_t lo, int32_t hi,
         int32_t* out) {
  const int32_t f = std::max(fa, fb), la = f - fa, lb = f - fb, s = f - fo;
  if (la <= 30 && lb <= 30 && s >= 0 && s <= 62) {
    // The same in one branch-free form: |a|, |b| < 2^31 shifted left by at most 30 stay below
    // 2^61, where round_shift neither clamps nor rounds, and their sum plus the rounding constant
    // below 2^63.
    const int64_t round = s > 0 ? int64_t{1} << (s - 1) : 0;
    for (int64_t j = 0; j < n; ++j)
      out[j] = rq::saturate(((int64_t{a[j]} << la) + (int64_t{b[j]} << lb) + round) >> s, lo, hi);
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    const int64_t sum = rq::round_shift(a[j], fa - f) + rq::round_shift(b[j], fb - f);  // exact left shifts
    out[j] = rq::saturate(rq::round_shift(sum, f - fo), lo, hi);
  }
}

void max_pool(const int32_t* in, Shape3 is, const Window& w, int32_t* out, Shape3 os) {
  for (int32_t c = 0; c < is.c; ++c)
    for (int32_t y = 0; y < os.h; ++y)
      for (int32_t x = 0; x < os.w; ++x) {
        int32_t best = std::numeric_limits<int32_t>::min();
        for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
          const int32_t iy = y * w.stride_h - w.pad_top + ky;
          if (iy < 0 || iy >= is.h) continue;
          for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
            const int32_t ix = x * w.stride_w - w.pad_left + kx;
            if (ix < 0 || ix >= is.w) continue;
            best = std::max(best, in[(int64_t{c} * is.h + iy) * is.w + ix]);
          }
        }
        out[(int64_t{c} * os.h + y) * os.w + x] = best;
      }
}


void average_pool(const int32_t* in, Shape3 is, int32_t fi, const Window& w, bool count_include_pad, int32_t* out,
                  Shape3 os, int32_t fo, int32_t lo, int32_t hi) {
  for (int32_t c = 0; c < is.c; ++c)
    for (int32_t y = 0; y < os.h; ++y)
      for (int32_t x = 0; x < os.w; ++x) {
        int64_t sum = 0;
        for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
          const int32_t iy = y * w.stride_h - w.pad_top + ky;
          for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
            const int32_t ix = x * w.stride_w - w.pad_left + kx;
            if (iy >= 0 && iy < is.h && ix >= 0 && ix < is.w) sum += in[(int64_t{c} * is.h + iy) * is.w + ix];
          }
        }
        const int64_t count = ref::average_pool_divisor(is, w, count_include_pad, y, x);
        out[(int64_t{c} * os.h + y) * os.w + x] = rq::saturate(rq::rescaled_mean(sum, count, fi, fo), lo, hi);
      }
}

void global_average_pool(const int32_t* in, Shape3 is, int32_t fi, int32_t* out, int32_t fo, int32_t lo,
                         int32_t hi) {
  const int64_t plane = int64_t{is.h} * is.w;
  for (int32_t c = 0; c < is.c; ++c) {
    int64_t sum = 0;
    for (int64_t j = 0; j < plane; ++j) sum += in[c * plane + j];
    out[c] = rq::saturate(rq::rescaled_mean(sum, plane, fi, fo), lo, hi);
  }
}

void relu(const int32_t* in, int64_t n, int32_t* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = std::max(in[j], 0);
}

}  // namespace trit::iref
