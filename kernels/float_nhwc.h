// The float fast path's layout and its layout-bound operations: activations [N][H][W][C]
// (channels innermost), convolution weights packed at prepare for fused multiply-adds
// (float_fma_generic.h computes them, one instantiation per path of the kernel table), and the
// pools and transposes between the float reference's [N][C][H][W] and this layout.
//
// Not the specification: the float reference (float_ref.h) is. The convolution rounds once per
// multiply-add (the reference rounds the product and the sum apart), so its outputs are within
// rounding of the reference's, not its bits. They are the same bits on every path (ref, avx2,
// avx512vnni), at every thread count and in every batch: each output is computed by one fixed
// sequence of operations, whatever tile, vector or thread computes it. The pools here are the
// reference's bits (the same operations per value, in the same order).
#pragma once

#include <cstdint>
#include <vector>

#include "trit/types.h"

namespace trit::k8 {

// One convolution, or fully connected layer, of the fused path, over NHWC activations.
//   Output pixels: q in [0, images * pixels) of the batch, image q / pixels, row (q % pixels) /
//   ow, column q % ow; o channels a pixel: out[q * o + channel].
//   Input: the value i of tap t for pixel q is in[origin(q) + tap_offset[t] + i], i in [0, c),
//     origin(q) = (q / pixels) * image_step + ((q % pixels) / ow) * row_step + (q % ow) * pixel_step.
//   A convolution's tap is a kernel row ky: its kernel_w * channels values lie side by side in a
//   padded NHWC input (padding is zeros there, so every tap of every pixel is a value), i =
//   kx * channels + channel. A fully connected layer: one tap, one pixel an image.
//   Arithmetic: acc = bias[channel], then acc = fma(input, weight, acc) over t ascending and,
//   within a tap, i ascending; with residual, acc = acc + residual[q * o + channel] (the
//   reference's Add fused: the same bits); then, with act == Relu, (acc < 0 ? 0 : acc).
// Bounds: c, o, ow, pixels, taps >= 1, ow divides pixels; every index above fits int64.
struct FmaConv {
  int32_t c = 0, o = 0;
  int32_t ow = 1, pixels = 1;
  int64_t image_step = 0, row_step = 0, pixel_step = 0;
  int32_t taps = 1;
  const int64_t* tap_offset = nullptr;  // taps values
  const float* residual = nullptr;      // or null
  Activation act = Activation::None;
};

// A convolution as FmaConv reads it, from a padded copy of its input when the window pads:
// fma_padded(in, w) is that copy's shape (the input itself when it does not pad), fma_taps its
// kernel rows' offsets, and fma_conv the rest (c, o, ow, pixels, steps; not residual, act).
Shape3 fma_padded(Shape3 in, const Window& w);
std::vector<int64_t> fma_taps(Shape3 in, const Window& w);
FmaConv fma_conv(Shape3 in, Shape3 out, const Window& w, const std::vector<int64_t>& taps);

// Pieces of pixels, the unit a thread takes: at most kFmaPiece pixels (a kernel computes their
// input origins once and reads each block's weights once for them). kFmaTile is a multiple of
// every path's tile (float_fma_generic.h). fma_piece(pixels): the length of the fewest pieces
// that cover `pixels`, equal and rounded up to whole tiles, so that no piece is a short
// remainder that reads all of a layer's weights for a few pixels.
constexpr int64_t kFmaPiece = 96, kFmaTile = 6;
int64_t fma_piece(int64_t pixels);

// Packed weights for a path whose table says f32_block = `block`: blocks of `block` output
// channels; block b holds [kh][kw * c][block] floats (FmaConv's taps and values), so that weight
// (channel b * block + l, input channel i, ky, kx) is at ((b * kh + ky) * kw * c + kx * c + i) *
// block + l. Channels past o are 0. w is the reference's layout [o][c][kh][kw] (a fully connected
// layer's [o][c] is kh = kw = 1).
std::vector<float> pack_fma_weights(const float* w, int32_t o, int32_t c, int32_t kh, int32_t kw, int32_t block);
// The bias padded with zeros to whole blocks (a kernel loads whole vectors of it); null: zeros.
std::vector<float> pad_fma_bias(const float* bias, int32_t o, int32_t block);
int32_t fma_blocks(int32_t o, int32_t block);

// Layout changes, image by image: x [n][c][h * w] <-> [n][h * w][c].
void nchw_to_nhwc(const float* x, int32_t n, Shape3 s, float* y);
void nhwc_to_nchw(const float* x, int32_t n, Shape3 s, float* y);
// One image [h][w][c] into [h + pt + pb][w + pl + pr][c] with zeros around it.
void pad_nhwc(const float* x, Shape3 s, const Window& w, float* y);

// The reference's pools (float_ref.h: max_pool, average_pool, global_average_pool) on one NHWC
// image: the same bits. Output rows [y0, y1) only, so that threads may split them.
void max_pool_nhwc(const float* in, Shape3 is, const Window& w, float* out, Shape3 os, int32_t y0, int32_t y1);
void average_pool_nhwc(const float* in, Shape3 is, const Window& w, bool count_include_pad, float* out, Shape3 os,
                       int32_t y0, int32_t y1);
void global_average_pool_nhwc(const float* in, Shape3 is, float* out);

}  // namespace trit::k8
