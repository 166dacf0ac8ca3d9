// The avx2 path's float convolution: float_conv_generic.h with this file's flags and vector
// width, bit for bit the float reference.
#include "float_conv_generic.h"
#include "x86/float_conv.h"

namespace trit::k8 {

void avx2_conv2d_f32(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w, Activation act,
                     float* out, Shape3 os, int32_t o_begin, int32_t o_end) {
  conv2d_f32<8, 6, 2, 8>(in, is, packed, bias, w, act, out, os, o_begin, o_end);
}

}  // namespace trit::k8
