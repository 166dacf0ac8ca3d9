// The avx512vnni path: vpdpbusd (u8 x s8, four products summed into int32, no saturation).
// Compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni, for this file only.
//
// Weights: blocks of nr = 16 * NV output channels (NV = 4, or fewer for narrow layers),
// [k / 4][nr][4] int8 per block, so one k-step of a block is NV aligned 64-byte loads.
// Micro tile: MR = 6 rows x NV vectors of 16 channels, 24 zmm accumulators at most; each k-step
// broadcasts 4 input bytes per row. Rows are gathered (im2col) into a thread-local tile of at
// most ~48 KB, or read in place for direct 1x1 layers.
#include <immintrin.h>

#include <cstring>

#include "int8/generic.h"
#include "int8/table.h"

namespace trit::k8 {
namespace {

constexpr int32_t kMr = 6;
constexpr int64_t kMaxTiles = 40;  // micro tiles per chunk

void pack_weights(ConvLayer& L, const int8_t* w) {
  L.nr = L.o >= 64 ? 64 : (L.o + 15) / 16 * 16;
  L.blocks = (L.o + L.nr - 1) / L.nr;
  L.weights = AlignedBytes(static_cast<size_t>(L.blocks) * L.nr * L.k);
  int8_t* dst = reinterpret_cast<int8_t*>(L.weights.data());
  for (int32_t b = 0; b < L.blocks; ++b)
    for (int32_t kk = 0; kk < L.k; kk += 4)
      for (int32_t j = 0; j < L.nr; ++j) {
        const int32_t o = b * L.nr + j;
        for (int32_t t = 0; t < 4; ++t)
          *dst++ = o < L.o ? w[int64_t{o} * L.k + kk + t] : int8_t{0};
      }
}

inline int32_t load_u32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Requantizes 16 accumulators of channels [o, o + 16) and stores those below `limit`.
inline void store16(const ConvLayer& L, __m512i acc, int32_t o, int32_t limit, void* row) {
  const __mmask16 keep = limit - o >= 16 ? __mmask16(0xffff) : __mmask16((1u << (limit - o)) - 1);
  const __m512i lo = _mm512_set1_epi64(L.lo), hi = _mm512_set1_epi64(L.hi);
  __m256i half[2];
  for (int h = 0; h < 2; ++h) {
    const int32_t c = o + 8 * h;
    __m512i v = _mm512_cvtepi32_epi64(h == 0 ? _mm512_castsi512_si256(acc) : _mm512_extracti64x4_epi64(acc, 1));
    v = _mm512_add_epi64(_mm512_mul_epi32(v, _mm512_loadu_si512(L.mult.data() + c)),
                         _mm512_loadu_si512(L.bias.data() + c));
    if (!L.shifts_right) {
      v = _mm512_max_epi64(_mm512_min_epi64(v, _mm512_loadu_si512(L.vmax.data() + c)),
                           _mm512_loadu_si512(L.vmin.data() + c));
      v = _mm512_sllv_epi64(v, _mm512_loadu_si512(L.shl.data() + c));
    }
    v = _mm512_srav_epi64(v, _mm512_loadu_si512(L.shr.data() + c));
    half[h] = _mm512_cvtepi64_epi32(_mm512_max_epi64(_mm512_min_epi64(v, hi), lo));
  }
  const __m512i r = _mm512_inserti64x4(_mm512_castsi256_si512(half[0]), half[1], 1);
  if (L.out_int32) _mm512_mask_storeu_epi32(static_cast<int32_t*>(row) + o, keep, r);
  else _mm_mask_storeu_epi8(static_cast<uint8_t*>(row) + o, keep, _mm512_cvtepi32_epi8(r));
}

// store16 in int32 lanes, for layers whose epilogue fits (layer.h, fits32).
inline void store16_32(const ConvLayer& L, __m512i acc, int32_t o, int32_t limit, void* row) {
  const __mmask16 keep = limit - o >= 16 ? __mmask16(0xffff) : __mmask16((1u << (limit - o)) - 1);
  __m512i v = acc;
  if (!L.unit_mult) v = _mm512_mullo_epi32(v, _mm512_loadu_si512(L.mult32.data() + o));
  v = _mm512_add_epi32(v, _mm512_loadu_si512(L.bias32.data() + o));
  v = _mm512_srav_epi32(v, _mm512_loadu_si512(L.shr32.data() + o));
  v = _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(L.hi)), _mm512_set1_epi32(L.lo));
  if (L.out_int32) _mm512_mask_storeu_epi32(static_cast<int32_t*>(row) + o, keep, v);
  else _mm_mask_storeu_epi8(static_cast<uint8_t*>(row) + o, keep, _mm512_cvtepi32_epi8(v));
}

// Requantizes and stores rows [0, rows) of acc ([6][64] int32), channels o0 + [0, 16 * nv).
// (Hoisting the channels' constants out of the row loop measured slower here.)
void store_tile(const ConvLayer& L, const int32_t* acc, int rows, int nv, int64_t m, int32_t o0, void* out) {
  const int32_t limit = L.out_int32 ? L.o : L.ocs;
  const size_t elem = L.out_int32 ? 4 : 1;
  for (int r = 0; r < rows; ++r) {
    void* row = static_cast<uint8_t*>(out) + (m + r) * L.ocs * elem;
    for (int j = 0; j < nv; ++j) {
      if (o0 + 16 * j >= limit) break;
      const __m512i v = _mm512_load_si512(acc + r * 64 + j * 16);
      if (L.fits32) store16_32(L, v, o0 + 16 * j, limit, row);
      else store16(L, v, o0 + 16 * j, limit, row);
    }
  }
}

// The R x 64 micro tiles' loops (R = 1..6 rows, 4 vectors of 16 channels), in assembly: GCC 12
// shuffles intrinsic accumulators between registers and the stack here (measured: 27 % of
// the ceiling against about 70 % for these). zmm(4r + j) accumulates row r, vector j;
// zmm24-27 hold the k-step's weights; zmm28-31 the broadcast inputs. For each of ntaps taps t,
// rows start at a + taps[t] and lie lda apart; each tap runs ksteps k-steps of 4 bytes.
// acc receives [R][64] int32 (rows 64 int32 apart). Generated; one body per R.
#define TRIT_KERNEL_ARGS \
  const uint8_t *a, int64_t lda, const int8_t *w, const int64_t *taps, int64_t ntaps, int64_t ksteps, int32_t *acc

void kernel_1x64(TRIT_KERNEL_ARGS) {
  const int64_t lda3 = 3 * lda;
  const uint8_t *a0, *a3;
  int64_t k;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
      "2:\n\t"
      "mov (%[taps]), %[a0]\n\t"
      "add %[a], %[a0]\n\t"
      "lea (%[a0],%[lda3],1), %[a3]\n\t"
      "mov %[ks], %[k]\n\t"
      "1:\n\t"
      "vmovdqa64 0(%[w]), %%zmm24\n\t"
      "vmovdqa64 64(%[w]), %%zmm25\n\t"
      "vmovdqa64 128(%[w]), %%zmm26\n\t"
      "vmovdqa64 192(%[w]), %%zmm27\n\t"
      "vpbroadcastd (%[a0]), %%zmm28\n\t"
      "vpdpbusd %%zmm24, %%zmm28, %%zmm0\n\t"
      "vpdpbusd %%zmm25, %%zmm28, %%zmm1\n\t"
      "vpdpbusd %%zmm26, %%zmm28, %%zmm2\n\t"
      "vpdpbusd %%zmm27, %%zmm28, %%zmm3\n\t"
      "add $4, %[a0]\n\t"
      "add $4, %[a3]\n\t"
      "add $256, %[w]\n\t"
      "dec %[k]\n\t"
      "jnz 1b\n\t"
      "add $8, %[taps]\n\t"
      "dec %[nt]\n\t"
      "jnz 2b\n\t"
      "vmovdqu32 %%zmm0, 0(%[acc])\n\t"
      "vmovdqu32 %%zmm1, 64(%[acc])\n\t"
      "vmovdqu32 %%zmm2, 128(%[acc])\n\t"
      "vmovdqu32 %%zmm3, 192(%[acc])\n\t"
      : [w] "+r"(w), [taps] "+r"(taps), [nt] "+r"(ntaps), [a0] "=&r"(a0), [a3] "=&r"(a3), [k] "=&r"(k)
      : [a] "r"(a), [lda] "r"(lda), [lda3] "r"(lda3), [ks] "r"(ksteps), [acc] "r"(acc)
      : "memory", "cc", "zmm0", "zmm1", "zmm2", "zmm3", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31");
}

void kernel_2x64(TRIT_KERNEL_ARGS) {
  const int64_t lda3 = 3 * lda;
  const uint8_t *a0, *a3;
  int64_t k;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
      "2:\n\t"
      "mov (%[taps]), %[a0]\n\t"
      "add %[a], %[a0]\n\t"
      "lea (%[a0],%[lda3],1), %[a3]\n\t"
      "mov %[ks], %[k]\n\t"
      "1:\n\t"
      "vmovdqa64 0(%[w]), %%zmm24\n\t"
      "vmovdqa64 64(%[w]), %%zmm25\n\t"
      "vmovdqa64 128(%[w]), %%zmm26\n\t"
      "vmovdqa64 192(%[w]), %%zmm27\n\t"
      "vpbroadcastd (%[a0]), %%zmm28\n\t"
      "vpdpbusd %%zmm24, %%zmm28, %%zmm0\n\t"
      "vpdpbusd %%zmm25, %%zmm28, %%zmm1\n\t"
      "vpdpbusd %%zmm26, %%zmm28, %%zmm2\n\t"
      "vpdpbusd %%zmm27, %%zmm28, %%zmm3\n\t"
      "vpbroadcastd (%[a0],%[lda],1), %%zmm29\n\t"
      "vpdpbusd %%zmm24, %%zmm29, %%zmm4\n\t"
      "vpdpbusd %%zmm25, %%zmm29, %%zmm5\n\t"
      "vpdpbusd %%zmm26, %%zmm29, %%zmm6\n\t"
      "vpdpbusd %%zmm27, %%zmm29, %%zmm7\n\t"
      "add $4, %[a0]\n\t"
      "add $4, %[a3]\n\t"
      "add $256, %[w]\n\t"
      "dec %[k]\n\t"
      "jnz 1b\n\t"
      "add $8, %[taps]\n\t"
      "dec %[nt]\n\t"
      "jnz 2b\n\t"
      "vmovdqu32 %%zmm0, 0(%[acc])\n\t"
      "vmovdqu32 %%zmm1, 64(%[acc])\n\t"
      "vmovdqu32 %%zmm2, 128(%[acc])\n\t"
      "vmovdqu32 %%zmm3, 192(%[acc])\n\t"
      "vmovdqu32 %%zmm4, 256(%[acc])\n\t"
      "vmovdqu32 %%zmm5, 320(%[acc])\n\t"
      "vmovdqu32 %%zmm6, 384(%[acc])\n\t"
      "vmovdqu32 %%zmm7, 448(%[acc])\n\t"
      : [w] "+r"(w), [taps] "+r"(taps), [nt] "+r"(ntaps), [a0] "=&r"(a0), [a3] "=&r"(a3), [k] "=&r"(k)
      : [a] "r"(a), [lda] "r"(lda), [lda3] "r"(lda3), [ks] "r"(ksteps), [acc] "r"(acc)
      : "memory", "cc", "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31");
}

void kernel_3x64(TRIT_KERNEL_ARGS) {
  const int64_t lda3 = 3 * lda;
  const uint8_t *a0, *a3;
  int64_t k;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
      "2:\n\t"
      "mov (%[taps]), %[a0]\n\t"
      "add %[a], %[a0]\n\t"
      "lea (%[a0],%[lda3],1), %[a3]\n\t"
      "mov %[ks], %[k]\n\t"
      "1:\n\t"
      "vmovdqa64 0(%[w]), %%zmm24\n\t"
      "vmovdqa64 64(%[w]), %%zmm25\n\t"
      "vmovdqa64 128(%[w]), %%zmm26\n\t"
      "vmovdqa64 192(%[w]), %%zmm27\n\t"
      "vpbroadcastd (%[a0]), %%zmm28\n\t"
      "vpdpbusd %%zmm24, %%zmm28, %%zmm0\n\t"
      "vpdpbusd %%zmm25, %%zmm28, %%zmm1\n\t"
      "vpdpbusd %%zmm26, %%zmm28, %%zmm2\n\t"
      "vpdpbusd %%zmm27, %%zmm28, %%zmm3\n\t"
      "vpbroadcastd (%[a0],%[lda],1), %%zmm29\n\t"
      "vpdpbusd %%zmm24, %%zmm29, %%zmm4\n\t"
      "vpdpbusd %%zmm25, %%zmm29, %%zmm5\n\t"
      "vpdpbusd %%zmm26, %%zmm29, %%zmm6\n\t"
      "vpdpbusd %%zmm27, %%zmm29, %%zmm7\n\t"
      "vpbroadcastd (%[a0],%[lda],2), %%zmm30\n\t"
      "vpdpbusd %%zmm24, %%zmm30, %%zmm8\n\t"
      "vpdpbusd %%zmm25, %%zmm30, %%zmm9\n\t"
      "vpdpbusd %%zmm26, %%zmm30, %%zmm10\n\t"
      "vpdpbusd %%zmm27, %%zmm30, %%zmm11\n\t"
      "add $4, %[a0]\n\t"
      "add $4, %[a3]\n\t"
      "add $256, %[w]\n\t"
      "dec %[k]\n\t"
      "jnz 1b\n\t"
      "add $8, %[taps]\n\t"
      "dec %[nt]\n\t"
      "jnz 2b\n\t"
      "vmovdqu32 %%zmm0, 0(%[acc])\n\t"
      "vmovdqu32 %%zmm1, 64(%[acc])\n\t"
      "vmovdqu32 %%zmm2, 128(%[acc])\n\t"
      "vmovdqu32 %%zmm3, 192(%[acc])\n\t"
      "vmovdqu32 %%zmm4, 256(%[acc])\n\t"
      "vmovdqu32 %%zmm5, 320(%[acc])\n\t"
      "vmovdqu32 %%zmm6, 384(%[acc])\n\t"
      "vmovdqu32 %%zmm7, 448(%[acc])\n\t"
      "vmovdqu32 %%zmm8, 512(%[acc])\n\t"
      "vmovdqu32 %%zmm9, 576(%[acc])\n\t"
      "vmovdqu32 %%zmm10, 640(%[acc])\n\t"
      "vmovdqu32 %%zmm11, 704(%[acc])\n\t"
      : [w] "+r"(w), [taps] "+r"(taps), [nt] "+r"(ntaps), [a0] "=&r"(a0), [a3] "=&r"(a3), [k] "=&r"(k)
      : [a] "r"(a), [lda] "r"(lda), [lda3] "r"(lda3), [ks] "r"(ksteps), [acc] "r"(acc)
      : "memory", "cc", "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31");
}

void kernel_4x64(TRIT_KERNEL_ARGS) {
  const int64_t lda3 = 3 * lda;
  const uint8_t *a0, *a3;
  int64_t k;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
      "vpxord %%zmm12, %%zmm12, %%zmm12\n\t"
      "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
      "vpxord %%zmm14, %%zmm14, %%zmm14\n\t"
      "vpxord %%zmm15, %%zmm15, %%zmm15\n\t"
      "2:\n\t"
      "mov (%[taps]), %[a0]\n\t"
      "add %[a], %[a0]\n\t"
      "lea (%[a0],%[lda3],1), %[a3]\n\t"
      "mov %[ks], %[k]\n\t"
      "1:\n\t"
      "vmovdqa64 0(%[w]), %%zmm24\n\t"
      "vmovdqa64 64(%[w]), %%zmm25\n\t"
      "vmovdqa64 128(%[w]), %%zmm26\n\t"
      "vmovdqa64 192(%[w]), %%zmm27\n\t"
      "vpbroadcastd (%[a0]), %%zmm28\n\t"
      "vpdpbusd %%zmm24, %%zmm28, %%zmm0\n\t"
      "vpdpbusd %%zmm25, %%zmm28, %%zmm1\n\t"
      "vpdpbusd %%zmm26, %%zmm28, %%zmm2\n\t"
      "vpdpbusd %%zmm27, %%zmm28, %%zmm3\n\t"
      "vpbroadcastd (%[a0],%[lda],1), %%zmm29\n\t"
      "vpdpbusd %%zmm24, %%zmm29, %%zmm4\n\t"
      "vpdpbusd %%zmm25, %%zmm29, %%zmm5\n\t"
      "vpdpbusd %%zmm26, %%zmm29, %%zmm6\n\t"
      "vpdpbusd %%zmm27, %%zmm29, %%zmm7\n\t"
      "vpbroadcastd (%[a0],%[lda],2), %%zmm30\n\t"
      "vpdpbusd %%zmm24, %%zmm30, %%zmm8\n\t"
      "vpdpbusd %%zmm25, %%zmm30, %%zmm9\n\t"
      "vpdpbusd %%zmm26, %%zmm30, %%zmm10\n\t"
      "vpdpbusd %%zmm27, %%zmm30, %%zmm11\n\t"
      "vpbroadcastd (%[a3]), %%zmm31\n\t"
      "vpdpbusd %%zmm24, %%zmm31, %%zmm12\n\t"
      "vpdpbusd %%zmm25, %%zmm31, %%zmm13\n\t"
      "vpdpbusd %%zmm26, %%zmm31, %%zmm14\n\t"
      "vpdpbusd %%zmm27, %%zmm31, %%zmm15\n\t"
      "add $4, %[a0]\n\t"
      "add $4, %[a3]\n\t"
      "add $256, %[w]\n\t"
      "dec %[k]\n\t"
      "jnz 1b\n\t"
      "add $8, %[taps]\n\t"
      "dec %[nt]\n\t"
      "jnz 2b\n\t"
      "vmovdqu32 %%zmm0, 0(%[acc])\n\t"
      "vmovdqu32 %%zmm1, 64(%[acc])\n\t"
      "vmovdqu32 %%zmm2, 128(%[acc])\n\t"
      "vmovdqu32 %%zmm3, 192(%[acc])\n\t"
      "vmovdqu32 %%zmm4, 256(%[acc])\n\t"
      "vmovdqu32 %%zmm5, 320(%[acc])\n\t"
      "vmovdqu32 %%zmm6, 384(%[acc])\n\t"
      "vmovdqu32 %%zmm7, 448(%[acc])\n\t"
      "vmovdqu32 %%zmm8, 512(%[acc])\n\t"
      "vmovdqu32 %%zmm9, 576(%[acc])\n\t"
      "vmovdqu32 %%zmm10, 640(%[acc])\n\t"
      "vmovdqu32 %%zmm11, 704(%[acc])\n\t"
      "vmovdqu32 %%zmm12, 768(%[acc])\n\t"
      "vmovdqu32 %%zmm13, 832(%[acc])\n\t"
      "vmovdqu32 %%zmm14, 896(%[acc])\n\t"
      "vmovdqu32 %%zmm15, 960(%[acc])\n\t"
      : [w] "+r"(w), [taps] "+r"(taps), [nt] "+r"(ntaps), [a0] "=&r"(a0), [a3] "=&r"(a3), [k] "=&r"(k)
      : [a] "r"(a), [lda] "r"(lda), [lda3] "r"(lda3), [ks] "r"(ksteps), [acc] "r"(acc)
      : "memory", "cc", "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12", "zmm13", "zmm14", "zmm15", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31");
}

void kernel_5x64(TRIT_KERNEL_ARGS) {
  const int64_t lda3 = 3 * lda;
  const uint8_t *a0, *a3;
  int64_t k;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
      "vpxord %%zmm12, %%zmm12, %%zmm12\n\t"
      "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
      "vpxord %%zmm14, %%zmm14, %%zmm14\n\t"
      "vpxord %%zmm15, %%zmm15, %%zmm15\n\t"
      "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
      "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
      "vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
      "vpxord %%zmm19, %%zmm19, %%zmm19\n\t"
      "2:\n\t"
      "mov (%[taps]), %[a0]\n\t"
      "add %[a], %[a0]\n\t"
      "lea (%[a0],%[lda3],1), %[a3]\n\t"
      "mov %[ks], %[k]\n\t"
      "1:\n\t"
      "vmovdqa64 0(%[w]), %%zmm24\n\t"
      "vmovdqa64 64(%[w]), %%zmm25\n\t"
      "vmovdqa64 128(%[w]), %%zmm26\n\t"
      "vmovdqa64 192(%[w]), %%zmm27\n\t"
      "vpbroadcastd (%[a0]), %%zmm28\n\t"
      "vpdpbusd %%zmm24, %%zmm28, %%zmm0\n\t"
      "vpdpbusd %%zmm25, %%zmm28, %%zmm1\n\t"
      "vpdpbusd %%zmm26, %%zmm28, %%zmm2\n\t"
      "vpdpbusd %%zmm27, %%zmm28, %%zmm3\n\t"
      "vpbroadcastd (%[a0],%[lda],1), %%zmm29\n\t"
      "vpdpbusd %%zmm24, %%zmm29, %%zmm4\n\t"
      "vpdpbusd %%zmm25, %%zmm29, %%zmm5\n\t"
      "vpdpbusd %%zmm26, %%zmm29, %%zmm6\n\t"
      "vpdpbusd %%zmm27, %%zmm29, %%zmm7\n\t"
      "vpbroadcastd (%[a0],%[lda],2), %%zmm30\n\t"
      "vpdpbusd %%zmm24, %%zmm30, %%zmm8\n\t"
      "vpdpbusd %%zmm25, %%zmm30, %%zmm9\n\t"
      "vpdpbusd %%zmm26, %%zmm30, %%zmm10\n\t"
      "vpdpbusd %%zmm27, %%zmm30, %%zmm11\n\t"
      "vpbroadcastd (%[a3]), %%zmm31\n\t"
      "vpdpbusd %%zmm24, %%zmm31, %%zmm12\n\t"
      "vpdpbusd %%zmm25, %%zmm31, %%zmm13\n\t"
      "vpdpbusd %%zmm26, %%zmm31, %%zmm14\n\t"
      "vpdpbusd %%zmm27, %%zmm31, %%zmm15\n\t"
      "vpbroadcastd (%[a3],%[lda],1), %%zmm28\n\t"
      "vpdpbusd %%zmm24, %%zmm28, %%zmm16\n\t"
      "vpdpbusd %%zmm25, %%zmm28, %%zmm17\n\t"
      "vpdpbusd %%zmm26, %%zmm28, %%zmm18\n\t"
      "vpdpbusd %%zmm27, %%zmm28, %%zmm19\n\t"
      "add $4, %[a0]\n\t"
      "add $4, %[a3]\n\t"
      "add $256, %[w]\n\t"
      "dec %[k]\n\t"
      "jnz 1b\n\t"
      "add $8, %[taps]\n\t"
      "dec %[nt]\n\t"
      "jnz 2b\n\t"
      "vmovdqu32 %%zmm0, 0(%[acc])\n\t"
      "vmovdqu32 %%zmm1, 64(%[acc])\n\t"
      "vmovdqu32 %%zmm2, 128(%[acc])\n\t"
      "vmovdqu32 %%zmm3, 192(%[acc])\n\t"
      "vmovdqu32 %%zmm4, 256(%[acc])\n\t"
      "vmovdqu32 %%zmm5, 320(%[acc])\n\t"
      "vmovdqu32 %%zmm6, 384(%[acc])\n\t"
      "vmovdqu32 %%zmm7, 448(%[acc])\n\t"
      "vmovdqu32 %%zmm8, 512(%[acc])\n\t"
      "vmovdqu32 %%zmm9, 576(%[acc])\n\t"
      "vmovdqu32 %%zmm10, 640(%[acc])\n\t"
      "vmovdqu32 %%zmm11, 704(%[acc])\n\t"
      "vmovdqu32 %%zmm12, 768(%[acc])\n\t"
      "vmovdqu32 %%zmm13, 832(%[acc])\n\t"
      "vmovdqu32 %%zmm14, 896(%[acc])\n\t"
      "vmovdqu32 %%zmm15, 960(%[acc])\n\t"
      "vmovdqu32 %%zmm16, 1024(%[acc])\n\t"
      "vmovdqu32 %%zmm17, 1088(%[acc])\n\t"
      "vmovdqu32 %%zmm18, 1152(%[acc])\n\t"
      "vmovdqu32 %%zmm19, 1216(%[acc])\n\t"
      : [w] "+r"(w), [taps] "+r"(taps), [nt] "+r"(ntaps), [a0] "=&r"(a0), [a3] "=&r"(a3), [k] "=&r"(k)
      : [a] "r"(a), [lda] "r"(lda), [lda3] "r"(lda3), [ks] "r"(ksteps), [acc] "r"(acc)
      : "memory", "cc", "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31");
}

void kernel_6x64(TRIT_KERNEL_ARGS) {
  const int64_t lda3 = 3 * lda;
  const uint8_t *a0, *a3;
  int64_t k;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
      "vpxord %%zmm12, %%zmm12, %%zmm12\n\t"
      "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
      "vpxord %%zmm14, %%zmm14, %%zmm14\n\t"
      "vpxord %%zmm15, %%zmm15, %%zmm15\n\t"
      "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
      "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
      "vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
      "vpxord %%zmm19, %%zmm19, %%zmm19\n\t"
      "vpxord %%zmm20, %%zmm20, %%zmm20\n\t"
      "vpxord %%zmm21, %%zmm21, %%zmm21\n\t"
      "vpxord %%zmm22, %%zmm22, %%zmm22\n\t"
      "vpxord %%zmm23, %%zmm23, %%zmm23\n\t"
      "2:\n\t"
      "mov (%[taps]), %[a0]\n\t"
      "add %[a], %[a0]\n\t"
      "lea (%[a0],%[lda3],1), %[a3]\n\t"
      "mov %[ks], %[k]\n\t"
      "1:\n\t"
      "vmovdqa64 0(%[w]), %%zmm24\n\t"
      "vmovdqa64 64(%[w]), %%zmm25\n\t"
      "vmovdqa64 128(%[w]), %%zmm26\n\t"
      "vmovdqa64 192(%[w]), %%zmm27\n\t"
      "vpbroadcastd (%[a0]), %%zmm28\n\t"
      "vpdpbusd %%zmm24, %%zmm28, %%zmm0\n\t"
      "vpdpbusd %%zmm25, %%zmm28, %%zmm1\n\t"
      "vpdpbusd %%zmm26, %%zmm28, %%zmm2\n\t"
      "vpdpbusd %%zmm27, %%zmm28, %%zmm3\n\t"
      "vpbroadcastd (%[a0],%[lda],1), %%zmm29\n\t"
      "vpdpbusd %%zmm24, %%zmm29, %%zmm4\n\t"
      "vpdpbusd %%zmm25, %%zmm29, %%zmm5\n\t"
      "vpdpbusd %%zmm26, %%zmm29, %%zmm6\n\t"
      "vpdpbusd %%zmm27, %%zmm29, %%zmm7\n\t"
      "vpbroadcastd (%[a0],%[lda],2), %%zmm30\n\t"
      "vpdpbusd %%zmm24, %%zmm30, %%zmm8\n\t"
      "vpdpbusd %%zmm25, %%zmm30, %%zmm9\n\t"
      "vpdpbusd %%zmm26, %%zmm30, %%zmm10\n\t"
      "vpdpbusd %%zmm27, %%zmm30, %%zmm11\n\t"
      "vpbroadcastd (%[a3]), %%zmm31\n\t"
      "vpdpbusd %%zmm24, %%zmm31, %%zmm12\n\t"
      "vpdpbusd %%zmm25, %%zmm31, %%zmm13\n\t"
      "vpdpbusd %%zmm26, %%zmm31, %%zmm14\n\t"
      "vpdpbusd %%zmm27, %%zmm31, %%zmm15\n\t"
      "vpbroadcastd (%[a3],%[lda],1), %%zmm28\n\t"
      "vpdpbusd %%zmm24, %%zmm28, %%zmm16\n\t"
      "vpdpbusd %%zmm25, %%zmm28, %%zmm17\n\t"
      "vpdpbusd %%zmm26, %%zmm28, %%zmm18\n\t"
      "vpdpbusd %%zmm27, %%zmm28, %%zmm19\n\t"
      "vpbroadcastd (%[a3],%[lda],2), %%zmm29\n\t"
      "vpdpbusd %%zmm24, %%zmm29, %%zmm20\n\t"
      "vpdpbusd %%zmm25, %%zmm29, %%zmm21\n\t"
      "vpdpbusd %%zmm26, %%zmm29, %%zmm22\n\t"
      "vpdpbusd %%zmm27, %%zmm29, %%zmm23\n\t"
      "add $4, %[a0]\n\t"
      "add $4, %[a3]\n\t"
      "add $256, %[w]\n\t"
      "dec %[k]\n\t"
      "jnz 1b\n\t"
      "add $8, %[taps]\n\t"
      "dec %[nt]\n\t"
      "jnz 2b\n\t"
      "vmovdqu32 %%zmm0, 0(%[acc])\n\t"
      "vmovdqu32 %%zmm1, 64(%[acc])\n\t"
      "vmovdqu32 %%zmm2, 128(%[acc])\n\t"
      "vmovdqu32 %%zmm3, 192(%[acc])\n\t"
      "vmovdqu32 %%zmm4, 256(%[acc])\n\t"
      "vmovdqu32 %%zmm5, 320(%[acc])\n\t"
      "vmovdqu32 %%zmm6, 384(%[acc])\n\t"
      "vmovdqu32 %%zmm7, 448(%[acc])\n\t"
      "vmovdqu32 %%zmm8, 512(%[acc])\n\t"
      "vmovdqu32 %%zmm9, 576(%[acc])\n\t"
      "vmovdqu32 %%zmm10, 640(%[acc])\n\t"
      "vmovdqu32 %%zmm11, 704(%[acc])\n\t"
      "vmovdqu32 %%zmm12, 768(%[acc])\n\t"
      "vmovdqu32 %%zmm13, 832(%[acc])\n\t"
      "vmovdqu32 %%zmm14, 896(%[acc])\n\t"
      "vmovdqu32 %%zmm15, 960(%[acc])\n\t"
      "vmovdqu32 %%zmm16, 1024(%[acc])\n\t"
      "vmovdqu32 %%zmm17, 1088(%[acc])\n\t"
      "vmovdqu32 %%zmm18, 1152(%[acc])\n\t"
      "vmovdqu32 %%zmm19, 1216(%[acc])\n\t"
      "vmovdqu32 %%zmm20, 1280(%[acc])\n\t"
      "vmovdqu32 %%zmm21, 1344(%[acc])\n\t"
      "vmovdqu32 %%zmm22, 1408(%[acc])\n\t"
      "vmovdqu32 %%zmm23, 1472(%[acc])\n\t"
      : [w] "+r"(w), [taps] "+r"(taps), [nt] "+r"(ntaps), [a0] "=&r"(a0), [a3] "=&r"(a3), [k] "=&r"(k)
      : [a] "r"(a), [lda] "r"(lda), [lda3] "r"(lda3), [ks] "r"(ksteps), [acc] "r"(acc)
      : "memory", "cc", "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22", "zmm23", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31");
}

#undef TRIT_KERNEL_ARGS

// Any tile: the assembly above for 64 channels, intrinsics for narrow layers; the same loops.
template <int MR, int NV>
void tile(const ConvLayer& L, const uint8_t* a, int64_t lda, const int8_t* wb, const int64_t* taps, int64_t ntaps,
          int64_t ksteps, int64_t m, int32_t o0, void* out) {
  alignas(64) int32_t sums[6 * 64];
  if constexpr (NV == 4) {
    if constexpr (MR == 6) kernel_6x64(a, lda, wb, taps, ntaps, ksteps, sums);
    if constexpr (MR == 5) kernel_5x64(a, lda, wb, taps, ntaps, ksteps, sums);
    if constexpr (MR == 4) kernel_4x64(a, lda, wb, taps, ntaps, ksteps, sums);
    if constexpr (MR == 3) kernel_3x64(a, lda, wb, taps, ntaps, ksteps, sums);
    if constexpr (MR == 2) kernel_2x64(a, lda, wb, taps, ntaps, ksteps, sums);
    if constexpr (MR == 1) kernel_1x64(a, lda, wb, taps, ntaps, ksteps, sums);
  } else {
    __m512i acc[MR][NV];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_si512();
    for (int64_t t = 0; t < ntaps; ++t) {
      const uint8_t* at = a + taps[t];
      for (int64_t kk = 0; kk < ksteps; ++kk, wb += NV * 64) {
        __m512i w[NV];
        for (int j = 0; j < NV; ++j) w[j] = _mm512_load_si512(wb + j * 64);
        for (int r = 0; r < MR; ++r) {
          const __m512i x = _mm512_set1_epi32(load_u32(at + r * lda + 4 * kk));
          for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], x, w[j]);
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NV; ++j) _mm512_store_si512(sums + r * 64 + j * 16, acc[r][j]);
  }
  store_tile(L, sums, MR, NV, m, o0, out);
}

template <int NV>
void tile_rows(int rows, const ConvLayer& L, const uint8_t* a, int64_t lda, const int8_t* wb, const int64_t* taps,
               int64_t ntaps, int64_t ksteps, int64_t m, int32_t o0, void* out) {
  switch (rows) {
    case 6: return tile<6, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, out);
    case 5: return tile<5, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, out);
    case 4: return tile<4, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, out);
    case 3: return tile<3, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, out);
    case 2: return tile<2, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, out);
    default: return tile<1, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, out);
  }
}

// Rows per gathered chunk: about 192 KB of taps, a multiple of the micro tile, so that a
// chunk and one weight block (<= 64 * k bytes) share the L2 cache and each block streams once
// per chunk.
int64_t chunk_rows(const ConvLayer& L) {
  const int64_t rows = 196608 / L.k / kMr * kMr;
  return rows < kMr ? kMr : rows > kMaxTiles * kMr ? kMaxTiles * kMr : rows;
}

size_t scratch_bytes(const ConvLayer& L) { return L.direct ? 0 : static_cast<size_t>(chunk_rows(L) * L.k); }

void conv(const ConvLayer& L, const uint8_t* in, void* out, int64_t m0, int64_t m1, int32_t b0, int32_t b1,
          void* scratch) {
  const int64_t chunk = chunk_rows(L);
  uint8_t* gathered = static_cast<uint8_t*>(scratch);
  const int32_t nv = L.nr / 16;
  const int64_t block_bytes = int64_t{L.nr} * L.k;
  const int8_t* weights = reinterpret_cast<const int8_t*>(L.weights.data());
  const int64_t zero_tap = 0;
  const int64_t row_ksteps = int64_t{L.window.kernel_w} * L.cs / 4;
  const uint8_t* base[2 * kMaxTiles];
  const bool align_rows = !L.direct && L.ow >= 2 * kMr;
  for (int64_t c0 = m0; c0 < m1; c0 += chunk) {
    const int64_t c1 = m1 < c0 + chunk ? m1 : c0 + chunk;
    // Tiles of at most kMr rows. On wide outputs, segments end where output rows end, so that
    // whole tiles read the input in place; the others read their gathered rows. Elsewhere the
    // tiles are as even as possible (a short tail tile streams a whole weight block for few
    // rows, bound by the L2 bandwidth).
    int64_t start[2 * kMaxTiles + 1];
    int64_t tiles = 0;
    for (int64_t s0 = c0; s0 < c1;) {
      int64_t s1 = c1;
      if (align_rows) {
        const int64_t row_end = (s0 / L.ow + 1) * L.ow;
        s1 = s1 < row_end ? s1 : row_end;
      }
      const int64_t n = s1 - s0, count = (n + kMr - 1) / kMr;
      for (int64_t i = 0; i < count; ++i, ++tiles) {
        // Within an output row, full tiles from its start: the short tail is a border tile,
        // gathered anyway, and fewer rows are gathered so.
        const int64_t m = align_rows ? s0 + i * kMr : s0 + n * i / count;
        const int64_t end = align_rows ? (m + kMr < s1 ? m + kMr : s1) : s0 + n * (i + 1) / count;
        start[tiles] = m;
        base[tiles] = in_place_base(L, in, m, end - m);
        if (base[tiles] == nullptr)
          for (int64_t r = m; r < end; ++r) gather_row(L, in, r, gathered + (r - c0) * L.k);
      }
      s0 = s1;
    }
    start[tiles] = c1;
    for (int32_t b = b0; b < b1; ++b)
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t m = start[t];
        const int rows = static_cast<int>(start[t + 1] - m);
        const int8_t* wb = weights + b * block_bytes;
        const bool place = base[t] != nullptr;
        const uint8_t* a = place ? base[t] : gathered + (m - c0) * L.k;
        const int64_t lda = place ? L.tap_lda : L.k;
        const int64_t* taps = place ? L.tap_offsets.data() : &zero_tap;
        const int64_t ntaps = place ? static_cast<int64_t>(L.tap_offsets.size()) : 1;
        const int64_t ksteps = place ? row_ksteps : L.k / 4;
        switch (nv) {
          case 4: tile_rows<4>(rows, L, a, lda, wb, taps, ntaps, ksteps, m, b * L.nr, out); break;
          case 3: tile_rows<3>(rows, L, a, lda, wb, taps, ntaps, ksteps, m, b * L.nr, out); break;
          case 2: tile_rows<2>(rows, L, a, lda, wb, taps, ntaps, ksteps, m, b * L.nr, out); break;
          default: tile_rows<1>(rows, L, a, lda, wb, taps, ntaps, ksteps, m, b * L.nr, out); break;
        }
      }
  }
}

const KernelTable kTable{Isa::Avx512Vnni, "avx512vnni", kMr, pack_weights, scratch_bytes, chunk_rows, conv, add_bytes, relu_s8_bytes,
                         max_pool_bytes, average_pool_bytes, global_average_pool_bytes};

}  // namespace

const KernelTable* avx512vnni_table() { return &kTable; }

}  // namespace trit::k8
