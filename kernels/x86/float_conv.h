// The float convolutions of the x86 paths (x86/*/float.cpp), for their kernel tables: each
// ref::conv2d's contract and bits (float_conv_generic.h).
#pragma once

#include <cstdint>

#include "trit/types.h"

namespace trit::k8 {

void avx2_conv2d_f32(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w, Activation act,
                     float* out, Shape3 os, int32_t o_begin, int32_t o_end);
void avx512vnni_conv2d_f32(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w,
                           Activation act, float* out, Shape3 os, int32_t o_begin, int32_t o_end);

}  // namespace trit::k8
