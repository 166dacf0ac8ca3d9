// The float reference kernels: the specification of trit's float semantics.
//
// Plain scalar loops that read like the equations below; nothing here is tuned beyond a loop
// order the compiler can vectorize. They serve as the float executor, the calibration engine of
// the converter, and the yardstick of the integer pipeline.
//
// Layout: one image, C-major ([C][H][W]) contiguous float arrays. Weights [O][I][KH][KW].
// Out-of-range (padded) input positions read as 0 for convolutions; for max pooling they never
// win; for average pooling they count in the divisor only when count_include_pad.
//
// Bounds the caller guarantees (check_graph establishes them for a loaded model): all extents
// >= 1; pads in [0, kernel - 1]; output extents are Window::out_h/out_w of the input; buffers
// hold exactly the elements their shapes say and do not overlap, except where a function says.
#pragma once

#include <cstdint>
#include <vector>

#include "trit/types.h"

namespace trit::ref {

// Weights [O][I][KH][KW] reordered to [I][KH][KW][O], the layout conv2d reads (done once, when
// an executor prepares a model).
std::vector<float> pack_conv_weights(const float* weights, int32_t o, int32_t i, int32_t kh, int32_t kw);

// out[o][y][x] = bias[o] + sum_{i, ky, kx} w[o][i][ky][kx] * in[i][y*sh - pt + ky][x*sw - pl + kx]
// (padded taps skipped), then ReLU when act == Relu; `packed` is pack_conv_weights(w).
// Output channels [o_begin, o_end) only, so callers can split the work.
void conv2d(const float* in, Shape3 in_shape, const float* packed, const float* bias,
            const Window& window, Activation act, float* out, Shape3 out_shape, int32_t o_begin,
            int32_t o_end);

// out[o] = bias[o] + sum_k w[o][k] * in[k], then ReLU when act == Relu; o in [o_begin, o_end).
void fully_connected(const float* in, int32_t k, const float* weights, const float* bias,
                     Activation act, float* out, int32_t o_begin, int32_t o_end);

void max_pool(const float* in, Shape3 in_shape, const Window& window, float* out, Shape3 out_shape);
void average_pool(const float* in, Shape3 in_shape, const Window& window, bool count_include_pad,
                  float* out, Shape3 out_shape);
// The divisor average_pool uses at output (y, x): the taps inside the input, plus the padded
// ones when count_include_pad (never taps past the padded extent).
int32_t average_pool_divisor(Shape3 in_shape, const Window& window, bool count_include_pad, int32_t y, int32_t x);
// out[c] = mean over H*W of in[c].
void global_average_pool(const float* in, Shape3 in_shape, float* out);
// out[i] = a[i] + b[i], then ReLU when act == Relu. out may alias a or b.
void add(const float* a, const float* b, int64_t n, Activation act, float* out);
// out[i] = max(in[i], 0). out may alias in.
void relu(const float* in, int64_t n, float* out);

}  // namespace trit::ref
