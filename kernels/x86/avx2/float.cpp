// The avx2 path's float convolutions: float_conv_generic.h with this file's flags and vector
// width (bit for bit the float reference), and float_fma_generic.h on 8-float vectors.
#include <immintrin.h>

#include "float_conv_generic.h"
#include "float_fma_generic.h"
#include "x86/float_conv.h"

namespace trit::k8 {
namespace {

struct Lanes {
  using Vec = __m256;
  static constexpr int W = 8;
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static Vec load_first(const float* p, int n) {
    alignas(32) float lanes[W] = {};
    for (int l = 0; l < n; ++l) lanes[l] = p[l];
    return _mm256_load_ps(lanes);
  }
  static Vec splat(const float* p) { return _mm256_broadcast_ss(p); }
  static Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  // (0 > v ? 0 : v): the reference's std::max(v, 0), -0 and NaN kept.
  static Vec relu(Vec v) { return _mm256_max_ps(_mm256_setzero_ps(), v); }
  static void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static void store_first(float* p, Vec v, int n) {
    alignas(32) float lanes[W];
    _mm256_store_ps(lanes, v);
    for (int l = 0; l < n; ++l) p[l] = lanes[l];
  }
};

// 12 accumulators and 2 weight vectors of the 16 registers.
using Fma = FmaKernel<Lanes, 6, kAvx2FloatBlock / Lanes::W>;

}  // namespace

void avx2_conv2d_f32(const float* in, Shape3 is, const float* packed, const float* bias, const Window& w, Activation act,
                     float* out, Shape3 os, int32_t o_begin, int32_t o_end) {
  conv2d_f32<8, 6, 2, 8>(in, is, packed, bias, w, act, out, os, o_begin, o_end);
}

void avx2_conv2d_f32_fma(const FmaConv& L, const float* in, const float* packed, const float* bias, float* out,
                         int64_t q0, int64_t q1, int32_t b0, int32_t b1) {
  Fma::run(L, in, packed, bias, out, q0, q1, b0, b1);
}

}  // namespace trit::k8
