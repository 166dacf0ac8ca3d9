// The avx2 path, for CPUs without VNNI. Compiled with -mavx2 -mfma -mbmi2 for this file only.
//
// vpmaddubsw (u8 x s8 pairs summed into int16) saturates once 2 * 255 * 127 > 32767
// (method.md), so this path widens both sides to int16 and uses vpmaddwd, whose pairs sum into
// int32 exactly: half vpmaddubsw's rate, never a wrong bit.
// Weights: blocks of nr = 16 output channels, [k / 2][16][2] int16 per block (one k-step of a
// block is two 32-byte loads). Rows are gathered as int16 (im2col, zero-extended u8).
// Micro tile: MR = 6 rows x 2 vectors of 8 channels = 12 ymm accumulators.
#include <immintrin.h>

#include <cstring>

#include "int8/generic.h"
#include "int8/table.h"

namespace trit::k8 {
namespace {

constexpr int32_t kMr = 6, kNr = 16;

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

template <int MR>
void tile(const ConvLayer& L, const int16_t* a, const int16_t* wb, int64_t m, int32_t b, void* out) {
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
  alignas(32) int32_t sums[kNr];
  for (int r = 0; r < MR; ++r) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums), acc[r][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8), acc[r][1]);
    store_row(L, sums, m + r, o0, o1, out);
  }
}

int64_t chunk_rows(const ConvLayer& L) {
  const int64_t rows = 49152 / (2 * L.k) / kMr * kMr;
  return rows < kMr ? kMr : rows > 16 * kMr ? 16 * kMr : rows;
}

size_t scratch_bytes(const ConvLayer& L) { return static_cast<size_t>(chunk_rows(L) * L.k) * sizeof(int16_t); }

void conv(const ConvLayer& L, const uint8_t* in, void* out, int64_t m0, int64_t m1, int32_t b0, int32_t b1,
          void* scratch_bytes_) {
  const int64_t chunk = chunk_rows(L);
  int16_t* rows_buf = static_cast<int16_t*>(scratch_bytes_);
  const int16_t* weights = reinterpret_cast<const int16_t*>(L.weights.data());
  for (int64_t c0 = m0; c0 < m1; c0 += chunk) {
    const int64_t c1 = m1 < c0 + chunk ? m1 : c0 + chunk;
    for (int64_t m = c0; m < c1; ++m) gather_row(L, in, m, rows_buf + (m - c0) * L.k);
    for (int32_t b = b0; b < b1; ++b)
      for (int64_t m = c0; m < c1; m += kMr) {
        const int16_t* am = rows_buf + (m - c0) * L.k;
        const int16_t* wb = weights + int64_t{b} * kNr * L.k;
        switch (c1 - m < kMr ? c1 - m : kMr) {
          case 6: tile<6>(L, am, wb, m, b, out); break;
          case 5: tile<5>(L, am, wb, m, b, out); break;
          case 4: tile<4>(L, am, wb, m, b, out); break;
          case 3: tile<3>(L, am, wb, m, b, out); break;
          case 2: tile<2>(L, am, wb, m, b, out); break;
          default: tile<1>(L, am, wb, m, b, out); break;
        }
      }
  }
}

const KernelTable kTable{Isa::Avx2, "avx2", kMr, pack_weights, scratch_bytes, chunk_rows, conv, add_bytes, relu_s8_bytes,
                         max_pool_bytes, average_pool_bytes, global_average_pool_bytes};

}  // namespace

const KernelTable* avx2_table() { return &kTable; }

}  // namespace trit::k8
