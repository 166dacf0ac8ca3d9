// The operations block reconstruction differentiates, forward and backward, on batches of float
// tensors [N][C][H][W] (reconstruct.h). Convolutions go through im2col and sgemm (OpenBLAS,
// whose results depend on nothing but the thread count); their sums run in another order than
// the float reference's, which is fine: these train variables, they do not specify a model.
//
// Every backward function adds its gradient to what the output arrays hold (so that a tensor read
// by two nodes collects both), except where it says "writes".
#pragma once

#include <cstdint>

#include "trit/types.h"

namespace trit::recon {

// A convolution's shapes (a fully connected layer: a 1x1 convolution of [K, 1, 1]).
struct ConvShape {
  Shape3 in, out;
  Window window;
  int64_t k() const { return int64_t{in.c} * window.kernel_h * window.kernel_w; }  // columns of W [O][K]
};

// y = conv(x, w) + b over a batch; w is [O][K] in [I][KH][KW] order. Writes y.
void conv_forward(const ConvShape& s, const float* x, int32_t batch, const float* w, const float* b, float* y);
// Given dy = dL/dy: dx += dL/dx, dw += dL/dw, db += dL/db, each skipped when null (x is read only
// for dw).
void conv_backward(const ConvShape& s, const float* x, int32_t batch, const float* w, const float* dy, float* dx, float* dw,
                   float* db);

// An activation as the integer pipeline leaves it: with exponent f and range [lo, hi] (lo = 0
// after a ReLU), q = clamp(floor(z * 2^f + 0.5), lo, hi) * 2^-f. Elements whose bit in `keep`
// is set (QDrop) stay in float instead: max(z, 0) after a ReLU, z otherwise. keep may be null
// (every element quantized). Writes q, and pass: the straight-through gradient's mask
// (quantized: lo <= z * 2^f <= hi; kept: z > 0 after a ReLU, else 1).
void activate(const float* z, int64_t n, int32_t f, int32_t lo, int32_t hi, bool relu, const uint64_t* keep, float* q,
              uint8_t* pass);
// Writes dz = dq where pass, else 0.
void activate_backward(const float* dq, const uint8_t* pass, int64_t n, float* dz);

// Random bits for QDrop: bit j of the result is 1 with probability p (0 <= p <= 1), from a hash of
// (seed, j) compared with p * 2^64: the same bits whatever the threads; bits past n are 0.
// words = ceil(n / 64).
void random_bits(uint64_t seed, int64_t n, double p, uint64_t* bits);

}  // namespace trit::recon
