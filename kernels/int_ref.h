// The integer reference kernels: the specification of trit's integer pipeline.
//
// Plain scalar loops. Every faster kernel (AVX2, AVX-512 VNNI) must equal these bit for bit.
// Tensors are one image's int32 arrays holding 8-bit values (u8 in [0, 255] or s8 in
// [-128, 127], each with its tensor's exponent f: value = m * 2^-f), C-major [C][H][W]; the
// final layer may write int32. Rounding and saturation come from requant.h only.
//
// Convolution, two equal forms:
//   conv2d_clusters: the paper's arithmetic. For each output o and pixel, for each cluster c of
//     filter o: s_c = sum over the cluster's taps of code * a (ternary: additions only), then
//     acc = sum_c scale_c * s_c, then requantize.
//     Bounds: |s_c| <= N * KH * KW * 7 * 255; |acc| <= K * 127 * 7 * 255 < 1.04e9 < 2^31 for
//     K = I * KH * KW <= 4608 (ResNet's largest) and int4; ternary and int8: <= 1.49e8.
//   conv2d: the same sum with each weight expanded once, W = code * scale_c (int16, |W| <= 889),
//     acc = sum_k W_k * a_k. Integer addition is associative and nothing overflows (bounds
//     above), so the two forms give the same bits; tests/test_quantize.cpp checks it.
// Int8 per-channel weights have one cluster per channel whose scale is the requantization
// multiplier instead (so acc stays within int32: 4608 * 127 * 255 < 1.5e8).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "trit/types.h"
#include "trit/weight_codes.h"

namespace trit::iref {

// Per output channel: m = saturate(round_shift(acc * multiplier + bias, shift), lo, hi).
struct Requant {
  std::vector<int32_t> multiplier;
  std::vector<int32_t> shift;
  std::vector<int64_t> bias;
  int32_t lo = 0, hi = 255;
};

// A layer's integer weights as the reference reads them.
struct LayerWeights {
  WeightLayout layout;              // encoding, shape, cluster size and shape
  std::span<const int8_t> codes;    // unpacked, [O][I][KH][KW]
  std::span<const uint8_t> scales;  // per cluster (cluster_of)
};

// The paper's form (see above). All output channels.
void conv2d_clusters(const int32_t* in, Shape3 in_shape, const LayerWeights& w, const Window& window,
                     const Requant& rq, int32_t* out, Shape3 out_shape);

// Expanded weights W = code * cluster scale (1 for int8 per channel), reordered to
// [I][KH][KW][O], the layout conv2d reads.
std::vector<int16_t> expand_weights(const LayerWeights& w);

// The expanded form. Output channels [o_begin, o_end). A fully connected layer is a 1x1
// convolution of a [K, 1, 1] input.
void conv2d(const int32_t* in, Shape3 in_shape, const int16_t* packed, const Window& window, const Requant& rq,
            int32_t* out, Shape3 out_shape, int32_t o_begin, int32_t o_end);

// out = saturate(round_shift(a * 2^(F - fa) + b * 2^(F - fb), F - fo)), F = max(fa, fb); then the
// output range [lo, hi] ([0, 255] with a fused ReLU). out may alias a or b.
void add(const int32_t* a, int32_t fa, const int32_t* b, int32_t fb, int64_t n, int32_t fo, int32_t lo,
         int32_t hi, int32_t* out);
// Same exponent in and out; padded taps never win.
void max_pool(const int32_t* in, Shape3 in_shape, const Window& window, int32_t* out, Shape3 out_shape);
// out = saturate(round_div(sum * 2^(fo - fi), count)), count as in the float reference.
void average_pool(const int32_t* in, Shape3 in_shape, int32_t fi, const Window& window, bool count_include_pad,
                  int32_t* out, Shape3 out_shape, int32_t fo, int32_t lo, int32_t hi);
void global_average_pool(const int32_t* in, Shape3 in_shape, int32_t fi, int32_t* out, int32_t fo, int32_t lo,
                         int32_t hi);
// max(m, 0), same exponent.
void relu(const int32_t* in, int64_t n, int32_t* out);

}  // namespace trit::iref
