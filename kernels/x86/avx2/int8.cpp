// The avx2 path, for CPUs without VNNI. Compiled with -mavx2 -mfma -mbmi2 for this file only.
//
// vpmaddubsw (u8 x s8 pairs summed into int16) saturates: its largest pair sum, 2 * 255 * 127,
// exceeds 32767. So this path widens both sides to int16 and uses vpmaddwd, whose pairs sum into
// int32 exactly: half vpmaddubsw's rate, never a wrong bit.
// Weights: blocks of nr = 16 output channels, [k / 2][16][2] int16 per block (one k-step of a
// block is two 32-byte loads). Rows are gathered as int16 (im2col, zero-extended u8).
// Micro tile: MR = 4 rows x 2 vectors of 8 channels = 8 ymm accumulators (with 6 rows GCC 12
// spills accumulators to the stack: 79 ms per ResNet-50 image against 57 ms with 4 rows).
#include <immintrin.h>

#include <cstring>

#include "int8/generic.h"
#include "x86/expand_quads.h"
#include "x86/expand_quads_impl.h"
#include "int8/table.h"
#include "x86/float_conv.h"

namespace trit::k8 {
namespace {

constexpr int32_t kMr = 4, kNr = 16;

void pack_weights(ConvLayer& L, const int8_t* w) {
  L.nr = kNr;
  L.blocks = (L.o + kNr - 1) / kNr;
  L.weights = AlignedBytes(static_cast<size_t>(L.blocks) * kNr * L.k * sizeof(int16_t));
  int16_t* dst = reinterpret_cast<int16_t*>(L.weights.data());
  for (int32_t b = 0; b < L.blocks; ++b)
    for (int32_t kk = 0; kk < L.k; kk += 2)
      for (int32_t j = 0; j < kNr; ++j) {
        const int32_t o = b * kNr + j;
        for (int32_t t = 0; t < 2; ++t) *dst++ = o < L.o ? w[int64_t{o} * L.k + kk + t] : int16_t{0};
      }
}

// Packed weights (layer.h, CompactWeights) back to this path's layout, 16 weights a vector: a
// row is 16 channels x 2 (pairs), 32 int16. Each lane gets the code byte of its element in its
// high byte (vpshufb, the other byte 0), a multiply by 2^(8 - b - b * (e % (8 / b))) moves the
// element's b bits to the top, and an arithmetic shift by 16 - b sign-extends them: int4's
// two's complement as it is; ternary's 1 -> +1 and 2 (binary 10) -> -2, whose sign is all that
// vpsignw reads. The scales, one byte per channel, are widened and doubled into pairs.
void expand(const ConvLayer& L, int64_t r0, int64_t r1, void* weights) {
  const CompactWeights& c = L.compact;
  int16_t* dst = static_cast<int16_t*>(weights) + r0 * 32;
  const bool ternary = c.bits == 2;
  // Lane e (of 16) reads code byte e / 4 (ternary) or e / 2 (int4) of its 8-byte half, into its
  // high byte; the 8 bytes sit in both 128-bit halves.
  const __m256i pick = ternary ? _mm256_setr_epi8(-1, 0, -1, 0, -1, 0, -1, 0, -1, 1, -1, 1, -1, 1, -1, 1,  //
                                                  -1, 2, -1, 2, -1, 2, -1, 2, -1, 3, -1, 3, -1, 3, -1, 3)
                               : _mm256_setr_epi8(-1, 0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3,  //
                                                  -1, 4, -1, 4, -1, 5, -1, 5, -1, 6, -1, 6, -1, 7, -1, 7);
  const __m256i up = ternary ? _mm256_setr_epi16(64, 16, 4, 1, 64, 16, 4, 1, 64, 16, 4, 1, 64, 16, 4, 1)
                             : _mm256_setr_epi16(16, 1, 16, 1, 16, 1, 16, 1, 16, 1, 16, 1, 16, 1, 16, 1);
  const int shift = 16 - c.bits;
  const int64_t code_bytes = 32 * c.bits / 8;  // per row: 8 (ternary) or 16 (int4)
  for (int64_t r = r0; r < r1; ++r, dst += 32) {
    const uint8_t* sc = c.scale_rows.data() + int64_t{c.row_scale[static_cast<size_t>(r)]} * 16;
    // [s0..s15] int16, quads reordered (0, 2, 1, 3) so that unpacklo/hi give [s0 s0 .. s7 s7]
    // and [s8 s8 .. s15 s15] across both halves.
    const __m256i s16 = _mm256_permute4x64_epi64(
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc))), 0xD8);
    const __m256i pairs[2] = {_mm256_unpacklo_epi16(s16, s16), _mm256_unpackhi_epi16(s16, s16)};
    const uint8_t* code = c.codes.data() + r * code_bytes;
    for (int h = 0; h < 2; ++h) {  // elements [16 h, 16 h + 16)
      __m128i half;
      if (ternary) {
        int32_t four;
        std::memcpy(&four, code + 4 * h, 4);
        half = _mm_cvtsi32_si128(four);
      } else {
        int64_t eight;
        std::memcpy(&eight, code + 8 * h, 8);
        half = _mm_cvtsi64_si128(eight);
      }
      const __m256i bytes = _mm256_broadcastsi128_si256(half);
      const __m256i v = _mm256_srai_epi16(_mm256_mullo_epi16(_mm256_shuffle_epi8(bytes, pick), up), shift);
      const __m256i w = ternary ? _mm256_sign_epi16(pairs[h], v) : _mm256_mullo_epi16(pairs[h], v);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 16 * h), w);
    }
  }
}

// Requantizes channels [o, o + 16) of one row in int32 lanes (layer.h, fits32; 8-bit output)
// and stores those below the output's stride, with the padded channels [o_n, ocs) as 0; through
// the fused add with the residual's row `res` when the layer has one.
inline void store16(const ConvLayer& L, __m256i a0, __m256i a1, int32_t o, const uint8_t* res, uint8_t* row) {
  const __m256i lo = _mm256_set1_epi32(L.lo), hi = _mm256_set1_epi32(L.hi);
  __m256i v[2] = {a0, a1};
  for (int h = 0; h < 2; ++h) {
    const int32_t c = o + 8 * h;
    if (!L.unit_mult) v[h] = _mm256_mullo_epi32(v[h], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(L.mult32.data() + c)));
    v[h] = _mm256_add_epi32(v[h], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(L.bias32.data() + c)));
    v[h] = _mm256_srav_epi32(v[h], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(L.shr32.data() + c)));
    v[h] = _mm256_max_epi32(_mm256_min_epi32(v[h], hi), lo);
  }
  // Narrow to bytes: values already lie in [lo, hi], so the saturating packs change nothing
  // (unsigned packing for u8 outputs, signed for s8); the permutes restore channel order.
  const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(v[0], v[1]), 0xD8);
  const __m256i b8 = L.lo >= 0 ? _mm256_packus_epi16(w16, w16) : _mm256_packs_epi16(w16, w16);
  const __m128i bytes = _mm256_castsi256_si128(_mm256_permute4x64_epi64(b8, 0x08));
  const int32_t left = L.ocs - o;
  if (L.residual) {
    alignas(16) uint8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
    add_bytes(L.add, tmp, res + o, row + o, left < 16 ? left : 16);
    return;
  }
  if (left >= 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row + o), bytes);
    return;
  }
  alignas(16) uint8_t tmp[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
  for (int32_t j = 0; j < left; ++j) row[o + j] = tmp[j];
}

template <int MR>
void tile(const ConvLayer& L, const int16_t* a, const int16_t* wb, int64_t m, int32_t b, const uint8_t* residual,
          void* out) {
  __m256i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int32_t kk = 0; kk < L.k; kk += 2, wb += 2 * kNr) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb));
    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + kNr));
    for (int r = 0; r < MR; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + int64_t{r} * L.k + kk, 4);
      const __m256i x = _mm256_set1_epi32(pair);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(x, w0));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(x, w1));
    }
  }
  const int32_t o0 = b * kNr, o1 = o0 + kNr < L.o ? o0 + kNr : L.o;
  if (L.fits32 && !L.out_int32) {
    for (int r = 0; r < MR; ++r)
      store16(L, acc[r][0], acc[r][1], o0, L.residual ? residual + (m + r) * L.ocs : nullptr,
              static_cast<uint8_t*>(out) + (m + r) * L.ocs);
    return;
  }
  alignas(32) int32_t sums[kNr];
  for (int r = 0; r < MR; ++r) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums), acc[r][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8), acc[r][1]);
    store_row(L, sums, m + r, o0, o1, residual, out);
  }
}

int64_t chunk_rows(const ConvLayer& L) {
  const int64_t rows = 49152 / (2 * L.k) / kMr * kMr;
  return rows < kMr ? kMr : rows > 16 * kMr ? 16 * kMr : rows;
}

size_t scratch_bytes(const ConvLayer& L) { return static_cast<size_t>(chunk_rows(L) * L.k) * sizeof(int16_t); }

void conv(const ConvLayer& L, const void* weights_, const uint8_t* in, const uint8_t* residual, void* out, int64_t m0,
          int64_t m1, int32_t b0, int32_t b1, void* scratch_bytes_) {
  const int64_t chunk = chunk_rows(L);
  int16_t* rows_buf = static_cast<int16_t*>(scratch_bytes_);
  const int16_t* weights = static_cast<const int16_t*>(weights_);
  for (int64_t c0 = m0; c0 < m1; c0 += chunk) {
    const int64_t c1 = m1 < c0 + chunk ? m1 : c0 + chunk;
    for (int64_t m = c0; m < c1; ++m) gather_row(L, in, m, rows_buf + (m - c0) * L.k);
    for (int32_t b = b0; b < b1; ++b)
      for (int64_t m = c0; m < c1; m += kMr) {
        const int16_t* am = rows_buf + (m - c0) * L.k;
        const int16_t* wb = weights + int64_t{b} * kNr * L.k;
        switch (c1 - m < kMr ? c1 - m : kMr) {
          case 4: tile<4>(L, am, wb, m, b, residual, out); break;
          case 3: tile<3>(L, am, wb, m, b, residual, out); break;
          case 2: tile<2>(L, am, wb, m, b, residual, out); break;
          default: tile<1>(L, am, wb, m, b, residual, out); break;
        }
      }
  }
}

const KernelTable kTable{Isa::Avx2, "avx2", 2, pack_weights, expand, scratch_bytes, chunk_rows, conv, add_bytes, relu_s8_bytes,
                         max_pool_bytes, average_pool_bytes, global_average_pool_bytes, avx2_conv2d_f32,
                         kAvx2FloatBlock, avx2_conv2d_f32_fma};

}  // namespace

const KernelTable* avx2_table() { return &kTable; }

void avx2_expand_quads(const ConvLayer& layer, int64_t r0, int64_t r1, void* weights) {
  expand_quads(layer, r0, r1, weights);
}

}  // namespace trit::k8
