// The float convolution at speed, bit for bit the float reference's (float_ref.h): compiled into
// each instruction set's translation unit (x86/avx2/float.cpp, x86/avx512vnni/float.cpp) with
// that unit's flags, with GCC's vector extensions for its vector width. Internal linkage only
// (style.md, point 6).
//
// Why the bits are the reference's: every output element is computed as the reference computes
// it, acc = bias, then acc = acc + w * a over the taps (i, ky, kx) in ascending order, padded
// taps skipped, in float with no fused multiply-add (the build has -ffp-contract=off, and vector
// lanes round as scalars do), then the ReLU as std::max(acc, 0). Only which outputs are computed
// together changes: tiles of R pixels of one output row x V vectors of channels, whose
// accumulators stay in registers across the taps (the reference reloads them from memory at
// every tap).
//   - Interior tiles (every tap of every pixel inside the input): no checks in the tap loop.
//   - Border pixels: one at a time, each tap checked, as the reference does.
//   - Channels past the last whole vector: the reference itself.
#pragma once

#include <cstdint>
#include <cstring>

#include "float_ref.h"

namespace trit::k8 {
namespace {

// W floats as one GCC vector (a specialization per width: an attribute on a dependent typedef
// would not be one).
template <int W>
struct FloatVec;
template <>
struct FloatVec<8> {
  typedef float type __attribute__((vector_size(32)));
  typedef int32_t lanes __attribute__((vector_size(32)));
};
template <>
struct FloatVec<16> {
  typedef float type __attribute__((vector_size(64)));
  typedef int32_t lanes __attribute__((vector_size(64)));
};

template <int W>
struct FloatConv {
  typedef typename FloatVec<W>::type Vec;

  static Vec load(const float* p) {
    Vec v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static void store(float* p, Vec v) { std::memcpy(p, &v, sizeof(v)); }
  // Every lane a: lane 0 shuffled to all (a broadcast; not 0 + a, which would turn -0 into +0).
  static Vec splat(float a) {
    const Vec first = {a};
    return __builtin_shuffle(first, typename FloatVec<W>::lanes{});
  }

  // R pixels (x0 ...) of output row y, channels c0 + [0, V * W), all taps inside the input.
  template <int R, int V>
  static void interior(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w, bool relu,
                       float* out, Shape3 os, int32_t y, int32_t x0, int32_t c0) {
    Vec acc[R][V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      const Vec b = load(bias + c0 + v * W);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][v] = b;
    }
    const int64_t plane = int64_t{is.h} * is.w;
    const int32_t iy0 = y * w.stride_h - w.pad_top, ix0 = x0 * w.stride_w - w.pad_left;
    for (int32_t i = 0; i < is.c; ++i)
      for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
        const float* row = in + i * plane + int64_t{iy0 + ky} * is.w + ix0;
        const float* wt = packed + ((int64_t{i} * w.kernel_h + ky) * w.kernel_w) * os.c + c0;
        for (int32_t kx = 0; kx < w.kernel_w; ++kx, wt += os.c) {
          Vec wv[V];
#pragma GCC unroll 8
          for (int v = 0; v < V; ++v) wv[v] = load(wt + v * W);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) {
            const Vec a = splat(row[r * w.stride_w + kx]);
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v) acc[r][v] = acc[r][v] + wv[v] * a;
          }
        }
      }
    const int64_t oplane = int64_t{os.h} * os.w;
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < V; ++v) {
        Vec a = acc[r][v];
        if (relu) a = a < 0 ? Vec{} : a;  // std::max(acc, 0): -0 and NaN stay
        float lanes[W];
        store(lanes, a);
        float* dst = out + (c0 + v * W) * oplane + int64_t{y} * os.w + x0 + r;
        for (int l = 0; l < W; ++l) dst[l * oplane] = lanes[l];
      }
  }

  // One pixel, channels c0 + [0, V * W), padded taps skipped.
  template <int V>
  static void border(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w, bool relu,
                     float* out, Shape3 os, int32_t y, int32_t x, int32_t c0) {
    Vec acc[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[v] = load(bias + c0 + v * W);
    const int64_t plane = int64_t{is.h} * is.w;
    for (int32_t i = 0; i < is.c; ++i)
      for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
        const int32_t iy = y * w.stride_h - w.pad_top + ky;
        if (iy < 0 || iy >= is.h) continue;
        for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
          const int32_t ix = x * w.stride_w - w.pad_left + kx;
          if (ix < 0 || ix >= is.w) continue;
          const Vec a = splat(in[i * plane + int64_t{iy} * is.w + ix]);
          const float* wt = packed + ((int64_t{i} * w.kernel_h + ky) * w.kernel_w + kx) * os.c + c0;
#pragma GCC unroll 8
          for (int v = 0; v < V; ++v) acc[v] = acc[v] + load(wt + v * W) * a;
        }
      }
    const int64_t oplane = int64_t{os.h} * os.w;
    for (int v = 0; v < V; ++v) {
      Vec a = acc[v];
      if (relu) a = a < 0 ? Vec{} : a;
      float lanes[W];
      store(lanes, a);
      float* dst = out + (c0 + v * W) * oplane + int64_t{y} * os.w + x;
      for (int l = 0; l < W; ++l) dst[l * oplane] = lanes[l];
    }
  }

  // n interior pixels from x0: tiles of R, then one tile of what is left.
  template <int R, int V>
  static void interior_run(int32_t n, const float* in, Shape3 is, const float* packed, const float* bias, const Window& w,
                           bool relu, float* out, Shape3 os, int32_t y, int32_t x0, int32_t c0) {
    int32_t x = x0;
    for (; x + R <= x0 + n; x += R) interior<R, V>(in, is, packed, bias, w, relu, out, os, y, x, c0);
    rest<R - 1, V>(x0 + n - x, in, is, packed, bias, w, relu, out, os, y, x, c0);
  }
  template <int Q, int V>
  static void rest(int32_t n, const float* in, Shape3 is, const float* packed, const float* bias, const Window& w, bool relu,
                   float* out, Shape3 os, int32_t y, int32_t x, int32_t c0) {
    if constexpr (Q > 0) {
      if (n == Q) return interior<Q, V>(in, is, packed, bias, w, relu, out, os, y, x, c0);
      rest<Q - 1, V>(n, in, is, packed, bias, w, relu, out, os, y, x, c0);
    }
  }

  // Output rows of channels [c0, c0 + V * W): interior runs in tiles of R pixels; border pixels
  // one by one, channels [c0, c0 + V * W) or, with border_v > 0, [c0, c0 + border_v * W) at once.
  template <int R, int V, int BV = V>
  static void channels(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w, bool relu,
                       float* out, Shape3 os, int32_t c0, bool borders = true) {
    // The output columns whose every tap lies inside the input: [xa, xb).
    int32_t xa = 0, xb = 0;
    for (int32_t x = 0; x < os.w; ++x) {
      const int32_t ix = x * w.stride_w - w.pad_left;
      const bool inside = ix >= 0 && ix + w.kernel_w <= is.w;
      if (inside && xb == xa) xa = x, xb = x + 1;
      else if (inside && x == xb) xb = x + 1;
    }
    for (int32_t y = 0; y < os.h; ++y) {
      const int32_t iy = y * w.stride_h - w.pad_top;
      const bool row_inside = iy >= 0 && iy + w.kernel_h <= is.h;
      const int32_t a = row_inside ? xa : os.w, b = row_inside ? xb : os.w;
      if (borders)
        for (int32_t x = 0; x < a; ++x) border<BV>(in, is, packed, bias, w, relu, out, os, y, x, c0);
      if (row_inside && b > a) interior_run<R, V>(b - a, in, is, packed, bias, w, relu, out, os, y, a, c0);
      if (borders)
        for (int32_t x = row_inside ? b : os.w; x < os.w; ++x) border<BV>(in, is, packed, bias, w, relu, out, os, y, x, c0);
    }
  }
};

// A 1x1 convolution with stride 1 and no padding is a product of [O][I] weights and [I][P]
// pixels: tiles of RO output channels x V vectors of consecutive pixels, the pixels in the
// vectors (both the input's rows and the output's are contiguous in C, H, W order). The sum of
// each output runs bias, then i ascending: the reference's.
template <int W>
struct Pointwise {
  using F = FloatConv<W>;
  using Vec = typename F::Vec;

  template <int RO, int V>
  static void tile(const float* in, int64_t p_n, int32_t c, const float* packed, int32_t o_n, const float* bias, bool relu,
                   float* out, int32_t o0, int64_t p0) {
    Vec acc[RO][V];
#pragma GCC unroll 8
    for (int r = 0; r < RO; ++r) {
      const Vec b = F::splat(bias[o0 + r]);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = b;
    }
    for (int32_t i = 0; i < c; ++i) {
      Vec a[V];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) a[v] = F::load(in + i * p_n + p0 + v * W);
      const float* wt = packed + int64_t{i} * o_n + o0;
#pragma GCC unroll 8
      for (int r = 0; r < RO; ++r) {
        const Vec wr = F::splat(wt[r]);
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) acc[r][v] = acc[r][v] + wr * a[v];
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RO; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) F::store(out + (o0 + r) * p_n + p0 + v * W, relu ? (acc[r][v] < 0 ? Vec{} : acc[r][v]) : acc[r][v]);
  }

  // One output, in scalars (the same operations as a lane).
  static void one(const float* in, int64_t p_n, int32_t c, const float* packed, int32_t o_n, const float* bias, bool relu,
                  float* out, int32_t o, int64_t p) {
    float acc = bias[o];
    for (int32_t i = 0; i < c; ++i) acc = acc + packed[int64_t{i} * o_n + o] * in[i * p_n + p];
    out[o * p_n + p] = relu && acc < 0 ? 0.0f : acc;
  }

  template <int RO, int V>
  static void run(const float* in, Shape3 is, const float* packed, const float* bias, bool relu, float* out, Shape3 os,
                  int32_t o_begin, int32_t o_end) {
    const int64_t p_n = int64_t{is.h} * is.w;
    int32_t o = o_begin;
    for (; o + RO <= o_end; o += RO) {
      int64_t p = 0;
      for (; p + V * W <= p_n; p += V * W) tile<RO, V>(in, p_n, is.c, packed, os.c, bias, relu, out, o, p);
      for (; p + W <= p_n; p += W) tile<RO, 1>(in, p_n, is.c, packed, os.c, bias, relu, out, o, p);
      for (; p < p_n; ++p)
        for (int r = 0; r < RO; ++r) one(in, p_n, is.c, packed, os.c, bias, relu, out, o + r, p);
    }
    for (; o < o_end; ++o)
      for (int64_t p = 0; p < p_n; ++p) one(in, p_n, is.c, packed, os.c, bias, relu, out, o, p);
  }
};

// ref::conv2d's contract and bits: channels [o_begin, o_end) in blocks of V * W (R pixels per
// tile; border pixels BV * W channels at a time: a border tap loads more weights per input
// value), then whole vectors, then the reference for the rest.
template <int W, int R, int V, int BV>
void conv2d_f32(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w, Activation act,
                float* out, Shape3 os, int32_t o_begin, int32_t o_end) {
  using F = FloatConv<W>;
  const bool relu = act == Activation::Relu;
  if (w.kernel_h == 1 && w.kernel_w == 1 && w.stride_h == 1 && w.stride_w == 1 && w.pad_top == 0 && w.pad_left == 0 &&
      w.pad_bottom == 0 && w.pad_right == 0)
    return Pointwise<W>::template run<W == 8 ? 4 : 6, W == 8 ? 3 : 4>(in, is, packed, bias, relu, out, os, o_begin, o_end);
  int32_t c = o_begin;
  for (; c + BV * W <= o_end; c += BV * W) {
    F::template channels<R, V, BV>(in, is, packed, bias, w, relu, out, os, c, true);  // borders of all BV
    for (int32_t v = V; v < BV; v += V) F::template channels<R, V>(in, is, packed, bias, w, relu, out, os, c + v * W, false);
  }
  for (; c + V * W <= o_end; c += V * W) F::template channels<R, V>(in, is, packed, bias, w, relu, out, os, c);
  for (; c + W <= o_end; c += W) F::template channels<R, 1>(in, is, packed, bias, w, relu, out, os, c);
  if (c < o_end) ref::conv2d(in, is, packed, bias, w, act, out, os, c, o_end);
}

}  // namespace
}  // namespace trit::k8
