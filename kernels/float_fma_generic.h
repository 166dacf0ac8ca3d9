// The fused float convolution (float_nhwc.h: FmaConv, its layout and its arithmetic), compiled
// into each path's translation unit with that path's vectors: `Lanes` gives the vector type and
// its five operations (x86/avx512vnni/float.cpp: 16 floats, x86/avx2/float.cpp: 8,
// int8/scalar.cpp: 1 with std::fma). Internal linkage only (style.md, point 6).
//
// Loops, outermost first: pieces of at most kFmaPiece output pixels (their input origins computed
// once); blocks of B = V * W output channels (the table's f32_block); passes over kChunk values of
// one tap, so that the block's weights for them (32 KB) stay in L1 across the piece; tiles of R
// consecutive pixels (across rows and images) x V vectors, whose accumulators stay in registers
// for the pass and go to the output between passes (a float stored and loaded back unchanged).
// Each output's operations are FmaConv's sequence whatever the piece, pass or tile, so the
// pixels left at the end of a piece (R' < R) and the vectors past a block's last channel
// (V' < V) change only which outputs are computed together, never their bits.
//   AVX-512: R = 6, V = 4: 24 accumulators and 4 weight vectors; per value, 4 vector loads and 6
//   broadcasts feed 24 multiply-adds (ONNX Runtime's NCHWc kernel has the same tile).
#pragma once

#include <cstdint>

#include "float_nhwc.h"

namespace trit::k8 {
namespace {

template <class Lanes, int R, int V>
struct FmaKernel {
  static_assert(R >= 1 && V >= 1 && V <= 4);
  using Vec = typename Lanes::Vec;
  static constexpr int W = Lanes::W, B = V * W;
  // Values of a tap per pass over a piece's tiles: the block's weights for them (kChunk * B
  // floats, 32 KB on AVX-512) stay in L1 across the tiles.
  static constexpr int32_t kChunk = 8192 / B;
  static_assert(kFmaTile % R == 0);

  // What a tile works on: values [i0, i1) of tap t; `first`: acc starts at the bias, else at
  // the partial sums in dst; `last`: the epilogue (residual, activation), else partial sums to dst.
  struct Pass {
    int32_t t, i0, i1;
    bool first, last;
  };

  // Pixels [q, q + RR) (their input origins at a[0 .. RR)), vectors [0, VV) of a block (wb: its
  // packed weights, bias: its padded bias, dst: pixel q's first channel of the block, res: the
  // same place in the residual or null); `n` valid channels in the block.
  template <int RR, int VV>
  static void tile(const FmaConv& L, const Pass& pass, const float* const* a, const float* wb, const float* bias,
                   const float* res, float* dst, int32_t n) {
    Vec acc[RR][VV];
#pragma GCC unroll 8
    for (int v = 0; v < VV; ++v) {
      const int lanes = n - v * W < W ? n - v * W : W;
      if (pass.first) {
        const Vec b = Lanes::load(bias + v * W);
#pragma GCC unroll 8
        for (int r = 0; r < RR; ++r) acc[r][v] = b;
      } else {
#pragma GCC unroll 8
        for (int r = 0; r < RR; ++r) {
          const float* d = dst + int64_t{r} * L.o + v * W;
          acc[r][v] = lanes == W ? Lanes::load(d) : Lanes::load_first(d, lanes);
        }
      }
    }
    const float* wt = wb + (int64_t{pass.t} * L.c + pass.i0) * B;
    const float* p[RR];
#pragma GCC unroll 8
    for (int r = 0; r < RR; ++r) p[r] = a[r] + L.tap_offset[pass.t];
    for (int32_t i = pass.i0; i < pass.i1; ++i, wt += B) {
      Vec wv[VV];
#pragma GCC unroll 8
      for (int v = 0; v < VV; ++v) wv[v] = Lanes::load(wt + v * W);
#pragma GCC unroll 8
      for (int r = 0; r < RR; ++r) {
        const Vec x = Lanes::splat(p[r] + i);
#pragma GCC unroll 8
        for (int v = 0; v < VV; ++v) acc[r][v] = Lanes::fma(x, wv[v], acc[r][v]);
      }
    }
    const bool relu = pass.last && L.act == Activation::Relu;
#pragma GCC unroll 8
    for (int r = 0; r < RR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < VV; ++v) {
        const int64_t at = int64_t{r} * L.o + v * W;
        const int lanes = n - v * W < W ? n - v * W : W;
        Vec y = acc[r][v];
        if (pass.last && res) y = y + (lanes == W ? Lanes::load(res + at) : Lanes::load_first(res + at, lanes));
        if (relu) y = Lanes::relu(y);
        if (lanes == W) Lanes::store(dst + at, y);
        else Lanes::store_first(dst + at, y, lanes);
      }
  }

  // The input origin of output pixel q.
  static const float* origin(const FmaConv& L, const float* in, int64_t q) {
    const int64_t image = q / L.pixels, p = q % L.pixels;
    return in + image * L.image_step + (p / L.ow) * L.row_step + (p % L.ow) * L.pixel_step;
  }

  // The `count` pixels whose origins are a[0 .. count), from pixel q, of one block: every pass
  // over all of their tiles (R pixels, then one tile of what is left).
  template <int VV>
  static void piece(const FmaConv& L, const float* const* a, int32_t count, int64_t q, const float* wb,
                    const float* bias, float* out, int32_t channel0, int32_t n) {
    const int64_t at = q * L.o + channel0;
    const float* res = L.residual ? L.residual + at : nullptr;
    for (int32_t t = 0; t < L.taps; ++t)
      for (int32_t i0 = 0; i0 < L.c; i0 += kChunk) {
        const int32_t i1 = L.c - i0 < kChunk ? L.c : i0 + kChunk;
        const Pass pass{t, i0, i1, t == 0 && i0 == 0, t == L.taps - 1 && i1 == L.c};
        int32_t r = 0;
        for (; r + R <= count; r += R)
          tile<R, VV>(L, pass, a + r, wb, bias, res ? res + int64_t{r} * L.o : nullptr, out + at + int64_t{r} * L.o, n);
        rest<R - 1, VV>(count - r, L, pass, a + r, wb, bias, res ? res + int64_t{r} * L.o : nullptr,
                        out + at + int64_t{r} * L.o, n);
      }
  }
  template <int Q, int VV>
  static void rest(int left, const FmaConv& L, const Pass& pass, const float* const* a, const float* wb,
                   const float* bias, const float* res, float* dst, int32_t n) {
    if constexpr (Q > 0) {
      if (left == Q) return tile<Q, VV>(L, pass, a, wb, bias, res, dst, n);
      rest<Q - 1, VV>(left, L, pass, a, wb, bias, res, dst, n);
    }
  }

  // Pixels [q0, q1) of blocks [b0, b1): pieces of at most kFmaPiece pixels, each block by block.
  static void run(const FmaConv& L, const float* in, const float* packed, const float* bias, float* out, int64_t q0,
                  int64_t q1, int32_t b0, int32_t b1) {
    const float* a[kFmaPiece];
    for (int64_t q = q0; q < q1; q += kFmaPiece) {
      const auto count = static_cast<int32_t>(q1 - q < kFmaPiece ? q1 - q : kFmaPiece);
      for (int32_t r = 0; r < count; ++r) a[r] = origin(L, in, q + r);
      for (int32_t b = b0; b < b1; ++b) {
        const float* wb = packed + int64_t{b} * L.taps * L.c * B;
        const int32_t n = L.o - b * B < B ? L.o - b * B : B;
        const int32_t vectors = (n + W - 1) / W;
        const float* bb = bias + int64_t{b} * B;
        if constexpr (V >= 4)
          if (vectors == 4) { piece<4>(L, a, count, q, wb, bb, out, b * B, n); continue; }
        if constexpr (V >= 3)
          if (vectors == 3) { piece<3>(L, a, count, q, wb, bb, out, b * B, n); continue; }
        if constexpr (V >= 2)
          if (vectors == 2) { piece<2>(L, a, count, q, wb, bb, out, b * B, n); continue; }
        piece<1>(L, a, count, q, wb, bb, out, b * B, n);
      }
    }
  }
};

}  // namespace
}  // namespace trit::k8
