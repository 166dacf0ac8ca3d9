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

// The 6 x 64 micro tile's k loop, in assembly: GCC 12 shuffles intrinsic accumulators between
// registers and the stack here (measured: 27 % of the ceiling). zmm0-23 accumulate row r,
// vector j in zmm(4r + j); zmm24-27 hold the k-step's weights; zmm28-31 the broadcast inputs.
// acc receives [6][64] int32.
void kernel_6x64(const uint8_t* a, int64_t lda, const int8_t* w, int64_t ksteps, int32_t* acc) {
  const uint8_t* a3 = a + 3 * lda;
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
      : [a0] "+r"(a), [a3] "+r"(a3), [w] "+r"(w), [k] "+r"(ksteps)
      : [lda] "r"(lda), [acc] "r"(acc)
      : "memory", "cc", "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22", "zmm23", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31");
}

// Any other tile (fewer rows, or a narrow layer), with intrinsics.
template <int MR, int NV>
void tile(const ConvLayer& L, const uint8_t* a, int64_t lda, const int8_t* wb, int64_t m, int32_t o0, void* out) {
  alignas(64) int32_t sums[6 * 64];
  if constexpr (MR == 6 && NV == 4) {
    kernel_6x64(a, lda, wb, L.k / 4, sums);
  } else {
    __m512i acc[MR][NV];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_si512();
    for (int32_t kk = 0; kk < L.k; kk += 4, wb += NV * 64) {
      __m512i w[NV];
      for (int j = 0; j < NV; ++j) w[j] = _mm512_load_si512(wb + j * 64);
      for (int r = 0; r < MR; ++r) {
        const __m512i x = _mm512_set1_epi32(load_u32(a + r * lda + kk));
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], x, w[j]);
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NV; ++j) _mm512_store_si512(sums + r * 64 + j * 16, acc[r][j]);
  }
  store_tile(L, sums, MR, NV, m, o0, out);
}

template <int NV>
void tile_rows(int rows, const ConvLayer& L, const uint8_t* a, int64_t lda, const int8_t* wb, int64_t m, int32_t o0,
               void* out) {
  switch (rows) {
    case 6: return tile<6, NV>(L, a, lda, wb, m, o0, out);
    case 5: return tile<5, NV>(L, a, lda, wb, m, o0, out);
    case 4: return tile<4, NV>(L, a, lda, wb, m, o0, out);
    case 3: return tile<3, NV>(L, a, lda, wb, m, o0, out);
    case 2: return tile<2, NV>(L, a, lda, wb, m, o0, out);
    default: return tile<1, NV>(L, a, lda, wb, m, o0, out);
  }
}

// Rows per gathered chunk: about 192 KB of taps, a multiple of the micro tile, so that a
// chunk and one weight block (<= 64 * k bytes) share the L2 cache and each block streams once
// per chunk.
int64_t chunk_rows(const ConvLayer& L) {
  const int64_t rows = 196608 / L.k / kMr * kMr;
  return rows < kMr ? kMr : rows > 40 * kMr ? 40 * kMr : rows;
}

size_t scratch_bytes(const ConvLayer& L) { return L.direct ? 0 : static_cast<size_t>(chunk_rows(L) * L.k); }

void conv(const ConvLayer& L, const uint8_t* in, void* out, int64_t m0, int64_t m1, int32_t b0, int32_t b1,
          void* scratch) {
  const int64_t chunk = chunk_rows(L);
  uint8_t* tile_rows_buf = static_cast<uint8_t*>(scratch);
  const int32_t nv = L.nr / 16;
  const int64_t block_bytes = int64_t{L.nr} * L.k;
  const int8_t* weights = reinterpret_cast<const int8_t*>(L.weights.data());
  for (int64_t c0 = m0; c0 < m1; c0 += chunk) {
    const int64_t c1 = m1 < c0 + chunk ? m1 : c0 + chunk;
    const uint8_t* a = in + c0 * L.cs;
    if (!L.direct) {
      for (int64_t m = c0; m < c1; ++m) gather_row(L, in, m, tile_rows_buf + (m - c0) * L.k);
      a = tile_rows_buf;
    }
    const int64_t lda = L.direct ? L.cs : L.k;
    for (int32_t b = b0; b < b1; ++b)
      for (int64_t m = c0; m < c1; m += kMr) {
        const int rows = static_cast<int>(c1 - m < kMr ? c1 - m : kMr);
        const uint8_t* am = a + (m - c0) * lda;
        const int8_t* wb = weights + b * block_bytes;
        switch (nv) {
          case 4: tile_rows<4>(rows, L, am, lda, wb, m, b * L.nr, out); break;
          case 3: tile_rows<3>(rows, L, am, lda, wb, m, b * L.nr, out); break;
          case 2: tile_rows<2>(rows, L, am, lda, wb, m, b * L.nr, out); break;
          default: tile_rows<1>(rows, L, am, lda, wb, m, b * L.nr, out); break;
        }
      }
  }
}

const KernelTable kTable{Isa::Avx512Vnni, "avx512vnni", kMr, pack_weights, scratch_bytes, chunk_rows, conv, add_bytes, relu_s8_bytes,
                         max_pool_bytes, average_pool_bytes, global_average_pool_bytes};

}  // namespace

const KernelTable* avx512vnni_table() { return &kTable; }

}  // namespace trit::k8
