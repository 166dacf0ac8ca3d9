// Code every kernel path shares, compiled into each path's translation unit with that unit's
// flags (the compiler vectorizes the loops for it). Internal linkage only: an AVX-512 copy of
// a shared function must never be what an AVX2 machine links to (style.md, point 6).
//
// Everything here is the arithmetic of int_ref.h and requant.h on the layout of layer.h. No std::
// algorithm templates either: their out-of-line copies would be weak symbols.
#pragma once

#include <cstdint>
#include <cstring>

#include "float_ref.h"
#include "int8/layer.h"
#include "requant.h"

namespace trit::k8 {
namespace {

template <typename T>
T clamp_to(T v, T lo, T hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

// The epilogue of layer.h for one accumulator of output channel o.
inline int64_t requant_one(const ConvLayer& L, int32_t o, int32_t acc) {
  int64_t v = int64_t{acc} * L.mult[o] + L.bias[o];
  v = clamp_to(v, L.vmin[o], L.vmax[o]);
  v = (v << L.shl[o]) >> L.shr[o];  // arithmetic shift right: floor, as rq::round_shift
  return clamp_to<int64_t>(v, L.lo, L.hi);
}

inline int32_t value(uint8_t byte, bool is_signed) {
  return is_signed ? int32_t{static_cast<int8_t>(byte)} : int32_t{byte};
}

// The add of two bytes, as the reference's add node (layer.h, AddParams).
inline uint8_t add_one(const AddParams& p, uint8_t a, uint8_t b) {
  const int64_t x = (int64_t{value(a, p.a_signed)} << p.la) + (int64_t{value(b, p.b_signed)} << p.lb);
  return static_cast<uint8_t>(rq::saturate(rq::round_shift(x, p.s), p.lo, p.hi));
}

// Stores the requantized accumulators of one output row's channels [o0, o1), through the fused
// add with `residual` when the layer has one (layer.h); writes the padded channels [o, ocs)
// with 0 when o1 == o.
inline void store_row(const ConvLayer& L, const int32_t* acc, int64_t m, int32_t o0, int32_t o1, const uint8_t* residual,
                      void* out) {
  if (L.out_int32) {
    int32_t* dst = static_cast<int32_t*>(out) + m * L.ocs;
    for (int32_t o = o0; o < o1; ++o) dst[o] = static_cast<int32_t>(requant_one(L, o, acc[o - o0]));
    return;
  }
  uint8_t* dst = static_cast<uint8_t*>(out) + m * L.ocs;
  if (L.residual) {
    const uint8_t* res = residual + m * L.ocs;
    for (int32_t o = o0; o < o1; ++o) dst[o] = add_one(L.add, static_cast<uint8_t>(requant_one(L, o, acc[o - o0])), res[o]);
  } else {
    for (int32_t o = o0; o < o1; ++o) dst[o] = static_cast<uint8_t>(requant_one(L, o, acc[o - o0]));
  }
  if (o1 == L.o)
    for (int32_t o = L.o; o < L.ocs; ++o) dst[o] = 0;
}

// Writes output row m's K input taps (ky, kx, c) as T (uint8_t, or int16_t for vpmaddwd),
// reading bytes ^ in_xor and window padding as in_zero. The taps of one
// kernel row that fall inside the input are contiguous in NHWC: one run of bytes each.
template <typename T>
void gather_row(const ConvLayer& L, const uint8_t* in, int64_t m, T* a) {
  const Window w = L.window;
  const int32_t cs = L.cs, h = L.h, iw = L.w;
  const int64_t plane = int64_t{L.oh} * L.ow;
  const int64_t n = m / plane;
  const int32_t oy = static_cast<int32_t>(m % plane / L.ow), ox = static_cast<int32_t>(m % L.ow);
  const uint8_t flip = L.in_xor, zero = L.in_zero;
  const int32_t x0 = ox * w.stride_w - w.pad_left;
  // Kernel columns [kx0, kx1) read inside the input.
  const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + w.kernel_w > iw ? iw - x0 : w.kernel_w;
  const int64_t row_len = int64_t{w.kernel_w} * cs;
  for (int32_t ky = 0; ky < w.kernel_h; ++ky, a += row_len) {
    const int32_t iy = oy * w.stride_h - w.pad_top + ky;
    if (iy < 0 || iy >= h || kx1 <= kx0) {
      for (int64_t j = 0; j < row_len; ++j) a[j] = T(zero);
      continue;
    }
    for (int64_t j = 0; j < int64_t{kx0} * cs; ++j) a[j] = T(zero);
    const uint8_t* src = in + ((n * h + iy) * iw + x0 + kx0) * cs;
    T* dst = a + int64_t{kx0} * cs;
    const int64_t len = int64_t{kx1 - kx0} * cs;
    if constexpr (sizeof(T) == 1) {
      if (flip == 0) {
        std::memcpy(dst, src, static_cast<size_t>(len));
      } else {  // eight bytes at a time (len is a multiple of 4)
        int64_t j = 0;
        for (; j + 8 <= len; j += 8) {
          uint64_t v;
          std::memcpy(&v, src + j, 8);
          v ^= 0x8080808080808080ull;
          std::memcpy(dst + j, &v, 8);
        }
        for (; j < len; ++j) dst[j] = T(src[j] ^ flip);
      }
    } else {
      for (int64_t j = 0; j < len; ++j) dst[j] = T(src[j] ^ flip);
    }
    for (int64_t j = int64_t{kx1} * cs; j < row_len; ++j) a[j] = T(zero);
  }
}

// In place (layer.h): the input address of row m's tap (0, 0) when rows [m, m + rows) can be
// read there, else nullptr.
inline const uint8_t* in_place_base(const ConvLayer& L, const uint8_t* in, int64_t m, int64_t rows) {
  if (L.in_xor != 0) return nullptr;
  if (L.direct) return in + m * L.cs;
  const Window& w = L.window;
  const int64_t plane = int64_t{L.oh} * L.ow;
  const int64_t n = m / plane;
  const int32_t oy = static_cast<int32_t>(m % plane / L.ow), ox = static_cast<int32_t>(m % L.ow);
  if (ox + rows > L.ow) return nullptr;  // the tile wraps to the next output row
  const int32_t iy = oy * w.stride_h - w.pad_top, ix = ox * w.stride_w - w.pad_left;
  const int64_t ix_last = int64_t{ox + rows - 1} * w.stride_w - w.pad_left + w.kernel_w - 1;
  if (iy < 0 || iy + w.kernel_h > L.h || ix < 0 || ix_last >= L.w) return nullptr;
  return in + ((n * L.h + iy) * L.w + ix) * L.cs;
}

inline void add_bytes(const AddParams& p, const uint8_t* a, const uint8_t* b, uint8_t* out, int64_t n) {
  // int32 suffices while |(a << la) + (b << lb)| + 2^(s-1) < 2^31; the general case in int64.
  // Parameters in locals: `out` may alias anything, and the loop must vectorize.
  const int32_t la = p.la, lb = p.lb, s = p.s, lo = p.lo, hi = p.hi;
  if (la <= 21 && lb <= 21 && s >= 0 && s <= 30) {
    const int32_t round = s > 0 ? 1 << (s - 1) : 0;
    const int32_t ma = 1 << la, mb = 1 << lb;
    // Signed bytes read as value + 128 (byte ^ 0x80); the offsets fold into one constant.
    const uint8_t fa = p.a_signed ? 0x80 : 0, fb = p.b_signed ? 0x80 : 0;
    const int32_t offset = round - (p.a_signed ? 128 * ma : 0) - (p.b_signed ? 128 * mb : 0);
    for (int64_t j = 0; j < n; ++j) {
      const int32_t x = int32_t{uint8_t(a[j] ^ fa)} * ma + int32_t{uint8_t(b[j] ^ fb)} * mb + offset;
      out[j] = static_cast<uint8_t>(clamp_to(x >> s, lo, hi));
    }
    return;
  }
  for (int64_t j = 0; j < n; ++j) out[j] = add_one(p, a[j], b[j]);
}

inline void relu_s8_bytes(const uint8_t* in, uint8_t* out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = in[j] & 0x80 ? 0 : in[j];
}

template <typename T>
void max_pool_typed(const PoolParams& p, const T* in, T* out, int32_t y0, int32_t y1) {
  const Window w = p.window;
  const int32_t cs = p.cs, h = p.h, iw = p.w, ow = p.ow;
  for (int32_t y = y0; y < y1; ++y)
    for (int32_t x = 0; x < ow; ++x) {
      T* dst = out + (int64_t{y} * ow + x) * cs;
      bool first = true;
      for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
        const int32_t iy = y * w.stride_h - w.pad_top + ky;
        if (iy < 0 || iy >= h) continue;
        for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
          const int32_t ix = x * w.stride_w - w.pad_left + kx;
          if (ix < 0 || ix >= iw) continue;
          const T* src = in + (int64_t{iy} * iw + ix) * cs;
          if (first)
            for (int32_t c = 0; c < cs; ++c) dst[c] = src[c];
          else
            for (int32_t c = 0; c < cs; ++c) dst[c] = src[c] > dst[c] ? src[c] : dst[c];
          first = false;
        }
      }
    }
}

inline void max_pool_bytes(const PoolParams& p, const uint8_t* in, uint8_t* out, int32_t y0, int32_t y1) {
  if (p.is_signed) max_pool_typed(p, reinterpret_cast<const int8_t*>(in), reinterpret_cast<int8_t*>(out), y0, y1);
  else max_pool_typed(p, in, out, y0, y1);
}


inline void average_pool_bytes(const PoolParams& p, const uint8_t* in, uint8_t* out, int32_t y0, int32_t y1) {
  const Window& w = p.window;
  for (int32_t y = y0; y < y1; ++y)
    for (int32_t x = 0; x < p.ow; ++x) {
      const int64_t count = ref::average_pool_divisor(Shape3{p.cs, p.h, p.w}, w, p.count_include_pad, y, x);
      for (int32_t c = 0; c < p.cs; ++c) {
        int64_t sum = 0;
        for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
          const int32_t iy = y * w.stride_h - w.pad_top + ky;
          for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
            const int32_t ix = x * w.stride_w - w.pad_left + kx;
            if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) sum += value(in[(int64_t{iy} * p.w + ix) * p.cs + c], p.is_signed);
          }
        }
        out[(int64_t{y} * p.ow + x) * p.cs + c] =
            static_cast<uint8_t>(rq::saturate(rq::rescaled_mean(sum, count, p.fi, p.fo), p.lo, p.hi));
      }
    }
}

inline void global_average_pool_bytes(const PoolParams& p, const uint8_t* in, uint8_t* out) {
  // Sums (int64) pixel after pixel, so that the channel loop vectorizes.
  const int64_t plane = int64_t{p.h} * p.w;
  const int32_t cs = p.cs;
  int64_t sums[4096];
  for (int32_t c0 = 0; c0 < cs; c0 += 4096) {
    const int32_t n = cs - c0 < 4096 ? cs - c0 : 4096;
    for (int32_t c = 0; c < n; ++c) sums[c] = 0;
    for (int64_t j = 0; j < plane; ++j) {
      const uint8_t* px = in + j * cs + c0;
      if (p.is_signed)
        for (int32_t c = 0; c < n; ++c) sums[c] += static_cast<int8_t>(px[c]);
      else
        for (int32_t c = 0; c < n; ++c) sums[c] += px[c];
    }
    for (int32_t c = 0; c < n; ++c)
      out[c0 + c] = static_cast<uint8_t>(rq::saturate(rq::rescaled_mean(sums[c], plane, p.fi, p.fo), p.lo, p.hi));
  }
}

// Rows [r0, r1) of layer.compact expanded into the packed layout (layer.h, CompactWeights):
// element e of a row is code(e) * s[e / G], stored as E. One loop per code width, with G fixed,
// so that the compiler vectorizes it for the unit's instruction set.
template <typename E, int G, int Bits>
void expand_rows_typed(const CompactWeights& c, int64_t r0, int64_t r1, E* dst) {
  constexpr uint32_t kMask = (1u << Bits) - 1;
  const int32_t nr = c.nr, row_n = nr * G;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* s = c.scale_rows.data() + int64_t{c.row_scale[static_cast<size_t>(r)]} * nr;
    const uint8_t* code = c.codes.data() + r * row_n * Bits / 8;  // row_n * Bits is a multiple of 8
    E* out = dst + r * row_n;
    for (int32_t e = 0; e < row_n; ++e) {
      const uint32_t k = (uint32_t{code[e * Bits / 8]} >> (e * Bits % 8)) & kMask;
      // ternary 0, 1, 2 -> 0, +1, -1; int4 two's complement
      const int32_t v = Bits == 2 ? static_cast<int32_t>(k & 1) - static_cast<int32_t>(k >> 1)
                                  : static_cast<int32_t>(k ^ 8) - 8;
      out[e] = static_cast<E>(v * s[e / G]);
    }
  }
}

template <typename E, int G>
void expand_rows(const ConvLayer& L, int64_t r0, int64_t r1, void* weights) {
  if (L.compact.bits == 2) expand_rows_typed<E, G, 2>(L.compact, r0, r1, static_cast<E*>(weights));
  else expand_rows_typed<E, G, 4>(L.compact, r0, r1, static_cast<E*>(weights));
}

}  // namespace
}  // namespace trit::k8
