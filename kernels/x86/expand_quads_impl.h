// expand_quads.h's code, for translation units built with -mavx2 (x86/avx2/int8.cpp,
// x86/avx512vnni/int8.cpp). Internal linkage only (generic.h says why).
//
// A row is nr channels x 4 (a VNNI quad), int8; 8 channels (32 elements) a vector. Each lane
// gets its code byte and its channel's scale (vpshufb over the 8 or 16 code bytes and the 8
// scales, copied to both 128-bit halves):
//   ternary: the lane's 2 bits (mask 3 << 2t) compared with 1 << 2t (+1) and 2 << 2t (-1);
//            W = (s & plus) - (s & minus);
//   int4:    the lane's nibble (even t low, odd t high), sign-extended as (n ^ 8) - 8, times s
//            in int16 lanes (|W| <= 126), packed back to bytes in order.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "int8/layer.h"

namespace trit::k8 {
namespace {

inline void expand_quads(const ConvLayer& L, int64_t r0, int64_t r1, void* weights) {
  const CompactWeights& c = L.compact;
  const int32_t nr = c.nr, row_n = nr * 4;
  const bool ternary = c.bits == 2;
  // Lane (channel j, t) of 8 channels reads byte j (scales, ternary codes) or 2 j + t / 2 (int4).
  const __m256i by_channel = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,  //
                                              4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
  const __m256i by_pair = _mm256_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,  //
                                           8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  const __m256i field = _mm256_set1_epi32(static_cast<int32_t>(0xC0300C03u));
  const __m256i one = _mm256_set1_epi32(0x40100401), two = _mm256_set1_epi32(static_cast<int32_t>(0x80200802u));
  const __m256i odd = _mm256_set1_epi16(static_cast<int16_t>(0xFF00)), low = _mm256_set1_epi8(0x0F),
                eight = _mm256_set1_epi8(8);
  int8_t* dst = static_cast<int8_t*>(weights) + r0 * row_n;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* sc = c.scale_rows.data() + int64_t{c.row_scale[static_cast<size_t>(r)]} * nr;
    const uint8_t* code = c.codes.data() + r * row_n * c.bits / 8;
    for (int32_t j0 = 0; j0 < nr; j0 += 8, dst += 32) {
      int64_t s8;
      std::memcpy(&s8, sc + j0, 8);
      const __m256i s = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_cvtsi64_si128(s8)), by_channel);
      __m256i w;
      if (ternary) {
        int64_t k8;
        std::memcpy(&k8, code + j0, 8);
        const __m256i k = _mm256_and_si256(
            _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_cvtsi64_si128(k8)), by_channel), field);
        w = _mm256_sub_epi8(_mm256_and_si256(s, _mm256_cmpeq_epi8(k, one)), _mm256_and_si256(s, _mm256_cmpeq_epi8(k, two)));
      } else {
        const __m256i k = _mm256_shuffle_epi8(
            _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(code + 2 * j0))), by_pair);
        // Even lanes the low nibble, odd lanes the high one, then sign-extended.
        const __m256i nib = _mm256_blendv_epi8(_mm256_and_si256(k, low), _mm256_and_si256(_mm256_srli_epi16(k, 4), low), odd);
        const __m256i v = _mm256_sub_epi8(_mm256_xor_si256(nib, eight), eight);
        const __m256i lo = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)),
                                              _mm256_cvtepu8_epi16(_mm256_castsi256_si128(s)));
        const __m256i hi = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)),
                                              _mm256_cvtepu8_epi16(_mm256_extracti128_si256(s, 1)));
        w = _mm256_permute4x64_epi64(_mm256_packs_epi16(lo, hi), 0xD8);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), w);
    }
  }
}

}  // namespace
}  // namespace trit::k8
