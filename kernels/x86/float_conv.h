// The float convolutions of the x86 paths (x86/*/float.cpp), for their kernel tables:
// *_conv2d_f32 has ref::conv2d's contract and bits (float_conv_generic.h); *_conv2d_f32_fma is the
// fused convolution of float_nhwc.h (float_fma_generic.h), with the block its name gives.
#pragma once

#include <cstdint>

#include "float_nhwc.h"
#include "trit/types.h"

namespace trit::k8 {

void avx2_conv2d_f32(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w, Activation act,
                     float* out, Shape3 os, int32_t o_begin, int32_t o_end);
void avx512vnni_conv2d_f32(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w,
                           Activation act, float* out, Shape3 os, int32_t o_begin, int32_t o_end);

constexpr int32_t kAvx2FloatBlock = 16, kAvx512FloatBlock = 64;
void avx2_conv2d_f32_fma(const FmaConv& L, const float* in, const float* packed, const float* bias, float* out,
                         int64_t q0, int64_t q1, int32_t b0, int32_t b1);
void avx512vnni_conv2d_f32_fma(const FmaConv& L, const float* in, const float* packed, const float* bias, float* out,
                               int64_t q0, int64_t q1, int32_t b0, int32_t b1);

}  // namespace trit::k8
