// The avx512vnni path: vpdpbusd (u8 x s8, four products summed into int32, no saturation).
// Compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni, for this file only.
//
// Weights: blocks of nr = 16 * NV output channels (NV = 4, or fewer for narrow layers),
// [k / 4][nr][4] int8 per block, so one k-step of a block is NV aligned 64-byte loads.
// Micro tile: up to 6 rows x NV vectors of 16 channels, 24 zmm accumulators at most; each
// k-step broadcasts 4 input bytes per row. A tile reads the input in place (implicit GEMM,
// layer.h) when it can, else its rows gathered (im2col) into the caller's scratch. 64-channel
// tiles run in assembly with the requantization fused; narrow layers use intrinsics. Layers
// with more than 4096 taps (k) run over slices of k, their accumulators kept between slices
// (conv below).
#include <immintrin.h>

#include <cstring>

#include "int8/generic.h"
#include "x86/expand_quads_impl.h"
#include "int8/table.h"
#include "x86/float_conv.h"
#include "x86/store_rows.h"

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

// The add of layer.h (AddParams) on rows of bytes: out[r][j] = add(a[r][j], b[r][j]) for r < rows,
// j < n, rows lda, ldb, ldo bytes apart; out may be a or b. Where the sum fits 16 bits (shifts
// la, lb <= 6, s in [0, 15], and every a' * 2^la + b' * 2^lb + offset in int16; ResNet's adds), 64
// bytes at a time: the operands' bytes interleaved in pairs (a', b') = (a ^ fa, b ^ fb), where an
// s8 byte is read as value + 128, summed as a' * 2^la + b' * 2^lb by vpmaddubsw (at most
// 255 * 128, never saturated), then the offsets and the rounding constant added, shifted, clamped
// and packed back in order (the unpacks and the packs both work within 128-bit lanes). Elsewhere
// the shared loop.
void add_rows(const AddParams& p, const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ldb, uint8_t* out,
              int64_t ldo, int64_t rows, int64_t n) {
  const int32_t ma = 1 << (p.la < 7 ? p.la : 0), mb = 1 << (p.lb < 7 ? p.lb : 0);
  const int32_t offset = (p.s > 0 && p.s < 16 ? 1 << (p.s - 1) : 0) - (p.a_signed ? 128 * ma : 0) - (p.b_signed ? 128 * mb : 0);
  if (p.la > 6 || p.lb > 6 || p.s < 0 || p.s > 15 || offset < -32768 || 255 * (ma + mb) + offset > 32767) {
    for (int64_t r = 0; r < rows; ++r) add_bytes(p, a + r * lda, b + r * ldb, out + r * ldo, n);
    return;
  }
  const __m512i fa = _mm512_set1_epi8(static_cast<char>(p.a_signed ? 0x80 : 0));
  const __m512i fb = _mm512_set1_epi8(static_cast<char>(p.b_signed ? 0x80 : 0));
  const __m512i w = _mm512_set1_epi16(static_cast<int16_t>(ma | mb << 8));
  const __m512i off = _mm512_set1_epi16(static_cast<int16_t>(offset));
  const __m512i lo = _mm512_set1_epi16(static_cast<int16_t>(p.lo)), hi = _mm512_set1_epi16(static_cast<int16_t>(p.hi));
  const __m128i s = _mm_cvtsi32_si128(p.s);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; j += 64) {
      const __mmask64 keep = n - j >= 64 ? ~__mmask64{0} : (__mmask64{1} << (n - j)) - 1;
      const __m512i va = _mm512_xor_si512(_mm512_maskz_loadu_epi8(keep, a + r * lda + j), fa);
      const __m512i vb = _mm512_xor_si512(_mm512_maskz_loadu_epi8(keep, b + r * ldb + j), fb);
      __m512i x0 = _mm512_add_epi16(_mm512_maddubs_epi16(_mm512_unpacklo_epi8(va, vb), w), off);
      __m512i x1 = _mm512_add_epi16(_mm512_maddubs_epi16(_mm512_unpackhi_epi8(va, vb), w), off);
      x0 = _mm512_max_epi16(_mm512_min_epi16(_mm512_sra_epi16(x0, s), hi), lo);
      x1 = _mm512_max_epi16(_mm512_min_epi16(_mm512_sra_epi16(x1, s), hi), lo);
      const __m512i bytes = p.out_signed ? _mm512_packs_epi16(x0, x1) : _mm512_packus_epi16(x0, x1);
      _mm512_mask_storeu_epi8(out + r * ldo + j, keep, bytes);
    }
}

void add(const AddParams& p, const uint8_t* a, const uint8_t* b, uint8_t* out, int64_t n) {
  add_rows(p, a, 0, b, 0, out, 0, 1, n);
}

// Requantizes 16 accumulators of channels [o, o + 16) and stores those below `limit` at dst
// (channel o's place in its row).
inline void store16(const ConvLayer& L, __m512i acc, int32_t o, int32_t limit, void* dst) {
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
  if (L.out_int32) _mm512_mask_storeu_epi32(dst, keep, r);
  else _mm_mask_storeu_epi8(dst, keep, _mm512_cvtepi32_epi8(r));
}

// store16 in int32 lanes, for layers whose epilogue fits (layer.h, fits32).
inline void store16_32(const ConvLayer& L, __m512i acc, int32_t o, int32_t limit, void* dst_) {
  const __mmask16 keep = limit - o >= 16 ? __mmask16(0xffff) : __mmask16((1u << (limit - o)) - 1);
  __m512i v = acc;
  if (!L.unit_mult) v = _mm512_mullo_epi32(v, _mm512_loadu_si512(L.mult32.data() + o));
  v = _mm512_add_epi32(v, _mm512_loadu_si512(L.bias32.data() + o));
  v = _mm512_srav_epi32(v, _mm512_loadu_si512(L.shr32.data() + o));
  v = _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(L.hi)), _mm512_set1_epi32(L.lo));
  // Plain stores where all 16 lanes are kept (masked stores are slower on some cores).
  if (L.out_int32) {
    int32_t* dst = static_cast<int32_t*>(dst_);
    if (keep == 0xffff) _mm512_storeu_si512(dst, v);
    else _mm512_mask_storeu_epi32(dst, keep, v);
  } else {
    uint8_t* dst = static_cast<uint8_t*>(dst_);
    if (keep == 0xffff) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(v));
    else _mm_mask_storeu_epi8(dst, keep, _mm512_cvtepi32_epi8(v));
  }
}

// Requantizes and stores rows [0, rows) of acc ([6][64] int32), channels o0 + [0, 16 * nv), at
// dst (row 0's channel o0) and `stride` elements apart.
// (Hoisting the channels' constants out of the row loop measured slower here.)
void store_tile(const ConvLayer& L, const int32_t* acc, int rows, int nv, int32_t o0, void* dst, int64_t stride) {
  const int32_t limit = L.out_int32 ? L.o : L.ocs;
  const int64_t elem = L.out_int32 ? 4 : 1;
  for (int r = 0; r < rows; ++r) {
    uint8_t* row = static_cast<uint8_t*>(dst) + r * stride * elem;
    for (int j = 0; j < nv; ++j) {
      if (o0 + 16 * j >= limit) break;
      const __m512i v = _mm512_load_si512(acc + r * 64 + j * 16);
      if (L.fits32) store16_32(L, v, o0 + 16 * j, limit, row + 16 * j * elem);
      else store16(L, v, o0 + 16 * j, limit, row + 16 * j * elem);
    }
  }
}

// The micro tiles' loops, in assembly: GCC 12 shuffles intrinsic accumulators between
// registers and the stack here (measured: 27 % of the ceiling against 70-95 % for these).
//
// Registers: zmm(4r + j) accumulates row r (r < R <= 6), vector j of 16 channels; zmm24-27
// hold a k-step's weights (one 256-byte step of the packed block); zmm28-31 the broadcast
// inputs. For each of ntaps taps t, rows start at a + taps[t] and lie lda apart; each tap
// runs ksteps k-steps of 4 bytes. Then one of three endings:
//   kStore:     out receives [R][64] int32, the accumulators;
//   kFused:     (layer.h, fits32; 8-bit output; a whole block of 64 channels inside the
//               stride) zmm24-27 take the block's biases and zmm28-31 its shifts, and each
//               accumulator is biased, shifted, clamped to [lo, hi] and narrowed to bytes
//               straight into output row r at out + r * ocs, never leaving the registers;
//   kFusedMult: the same with each accumulator first multiplied by its channel's multiplier.
struct Epilogue32 {
  const int32_t* bias;  // the block's 64 channels each
  const int32_t* shr;
  const int32_t* mult;
  int32_t lo, hi;
  const int32_t* init;  // Init tiles: the accumulators start from [R][64] int32 here
};
enum Ending { kStore, kFused, kFusedMult };

#define TRIT_ZERO(z0, z1, z2, z3)                                                                 \
  "vpxord %%zmm" #z0 ", %%zmm" #z0 ", %%zmm" #z0 "\n\tvpxord %%zmm" #z1 ", %%zmm" #z1 ", %%zmm" #z1 \
  "\n\tvpxord %%zmm" #z2 ", %%zmm" #z2 ", %%zmm" #z2 "\n\tvpxord %%zmm" #z3 ", %%zmm" #z3 ", %%zmm" #z3 "\n\t"
#define TRIT_LOAD(z0, z1, z2, z3, off)                                                          \
  "vmovdqu32 " #off "+0(%[k]), %%zmm" #z0 "\n\tvmovdqu32 " #off "+64(%[k]), %%zmm" #z1 "\n\t"     \
  "vmovdqu32 " #off "+128(%[k]), %%zmm" #z2 "\n\tvmovdqu32 " #off "+192(%[k]), %%zmm" #z3 "\n\t"
#define TRIT_HEAD                                                                                   \
  "2:\n\tmov (%[taps]), %[a0]\n\tadd %[a], %[a0]\n\tlea (%[a0],%[lda3],1), %[a3]\n\tmov %[ks], %[k]\n\t" \
  "1:\n\tvmovdqa64 0(%[w]), %%zmm24\n\tvmovdqa64 64(%[w]), %%zmm25\n\t"                            \
  "vmovdqa64 128(%[w]), %%zmm26\n\tvmovdqa64 192(%[w]), %%zmm27\n\t"
#define TRIT_ROW(addr, b, z0, z1, z2, z3)                                                                  \
  "vpbroadcastd " addr ", %%zmm" #b "\n\tvpdpbusd %%zmm24, %%zmm" #b ", %%zmm" #z0                         \
  "\n\tvpdpbusd %%zmm25, %%zmm" #b ", %%zmm" #z1 "\n\tvpdpbusd %%zmm26, %%zmm" #b ", %%zmm" #z2 "\n\t"     \
  "vpdpbusd %%zmm27, %%zmm" #b ", %%zmm" #z3 "\n\t"
#define TRIT_TAIL                                                                              \
  "add $4, %[a0]\n\tadd $4, %[a3]\n\tadd $256, %[w]\n\tdec %[k]\n\tjnz 1b\n\t"                 \
  "add $8, %[taps]\n\tdec %[nt]\n\tjnz 2b\n\t"
#define TRIT_STORE(z0, z1, z2, z3, off)                                                      \
  "vmovdqu32 %%zmm" #z0 ", " #off "+0(%[out])\n\tvmovdqu32 %%zmm" #z1 ", " #off "+64(%[out])\n\t" \
  "vmovdqu32 %%zmm" #z2 ", " #off "+128(%[out])\n\tvmovdqu32 %%zmm" #z3 ", " #off "+192(%[out])\n\t"
#define TRIT_EPILOGUE                                                                              \
  "mov (%[epi]), %[k]\n\tvmovdqu32 0(%[k]), %%zmm24\n\tvmovdqu32 64(%[k]), %%zmm25\n\t"            \
  "vmovdqu32 128(%[k]), %%zmm26\n\tvmovdqu32 192(%[k]), %%zmm27\n\tmov 8(%[epi]), %[k]\n\t"       \
  "vmovdqu32 0(%[k]), %%zmm28\n\tvmovdqu32 64(%[k]), %%zmm29\n\tvmovdqu32 128(%[k]), %%zmm30\n\t" \
  "vmovdqu32 192(%[k]), %%zmm31\n\tmov 16(%[epi]), %[taps]\n\tmov %[out], %[a0]\n\t"               \
  "lea (%[ocs],%[ocs],2), %[k]\n\tlea (%[a0],%[k],1), %[a3]\n\t"
// One accumulator z of vector j (bias zmm b, shift zmm s) into 16 bytes at dst.
#define TRIT_Q(mul, z, b, s, dst)                                                                    \
  mul "vpaddd %%zmm" #b ", %%zmm" #z ", %%zmm" #z "\n\tvpsravd %%zmm" #s ", %%zmm" #z ", %%zmm" #z    \
  "\n\tvpmaxsd 24(%[epi])%{1to16%}, %%zmm" #z ", %%zmm" #z "\n\tvpminsd 28(%[epi])%{1to16%}, %%zmm" #z \
  ", %%zmm" #z "\n\tvpmovdb %%zmm" #z ", " dst "\n\t"
#define TRIT_M(z, off) "vpmulld " #off "(%[taps]), %%zmm" #z ", %%zmm" #z "\n\t"
#define TRIT_QROW(z0, z1, z2, z3, row)                                                      \
  TRIT_Q("", z0, 24, 28, "0" row) TRIT_Q("", z1, 25, 29, "16" row) TRIT_Q("", z2, 26, 30, "32" row) \
  TRIT_Q("", z3, 27, 31, "48" row)
#define TRIT_QMROW(z0, z1, z2, z3, row)                                                                    \
  TRIT_Q(TRIT_M(z0, 0), z0, 24, 28, "0" row) TRIT_Q(TRIT_M(z1, 64), z1, 25, 29, "16" row)                \
  TRIT_Q(TRIT_M(z2, 128), z2, 26, 30, "32" row) TRIT_Q(TRIT_M(z3, 192), z3, 27, 31, "48" row)

// Row r's input and output addresses.
#define TRIT_R0(x) "(%[a0])"
#define TRIT_R1(x) "(%[a0],%[" x "],1)"
#define TRIT_R2(x) "(%[a0],%[" x "],2)"
#define TRIT_R3(x) "(%[a3])"
#define TRIT_R4(x) "(%[a3],%[" x "],1)"
#define TRIT_R5(x) "(%[a3],%[" x "],2)"
// Rows [0, R), cumulatively.
#define TRIT_ZEROS1 TRIT_ZERO(0, 1, 2, 3)
#define TRIT_ZEROS2 TRIT_ZEROS1 TRIT_ZERO(4, 5, 6, 7)
#define TRIT_ZEROS3 TRIT_ZEROS2 TRIT_ZERO(8, 9, 10, 11)
#define TRIT_ZEROS4 TRIT_ZEROS3 TRIT_ZERO(12, 13, 14, 15)
#define TRIT_ZEROS5 TRIT_ZEROS4 TRIT_ZERO(16, 17, 18, 19)
#define TRIT_ZEROS6 TRIT_ZEROS5 TRIT_ZERO(20, 21, 22, 23)
#define TRIT_LOADS1 "mov 32(%[epi]), %[k]\n\t" TRIT_LOAD(0, 1, 2, 3, 0)
#define TRIT_LOADS2 TRIT_LOADS1 TRIT_LOAD(4, 5, 6, 7, 256)
#define TRIT_LOADS3 TRIT_LOADS2 TRIT_LOAD(8, 9, 10, 11, 512)
#define TRIT_LOADS4 TRIT_LOADS3 TRIT_LOAD(12, 13, 14, 15, 768)
#define TRIT_LOADS5 TRIT_LOADS4 TRIT_LOAD(16, 17, 18, 19, 1024)
#define TRIT_LOADS6 TRIT_LOADS5 TRIT_LOAD(20, 21, 22, 23, 1280)
#define TRIT_ROWS1 TRIT_ROW(TRIT_R0("lda"), 28, 0, 1, 2, 3)
#define TRIT_ROWS2 TRIT_ROWS1 TRIT_ROW(TRIT_R1("lda"), 29, 4, 5, 6, 7)
#define TRIT_ROWS3 TRIT_ROWS2 TRIT_ROW(TRIT_R2("lda"), 30, 8, 9, 10, 11)
#define TRIT_ROWS4 TRIT_ROWS3 TRIT_ROW(TRIT_R3("lda"), 31, 12, 13, 14, 15)
#define TRIT_ROWS5 TRIT_ROWS4 TRIT_ROW(TRIT_R4("lda"), 28, 16, 17, 18, 19)
#define TRIT_ROWS6 TRIT_ROWS5 TRIT_ROW(TRIT_R5("lda"), 29, 20, 21, 22, 23)
#define TRIT_STORES1 TRIT_STORE(0, 1, 2, 3, 0)
#define TRIT_STORES2 TRIT_STORES1 TRIT_STORE(4, 5, 6, 7, 256)
#define TRIT_STORES3 TRIT_STORES2 TRIT_STORE(8, 9, 10, 11, 512)
#define TRIT_STORES4 TRIT_STORES3 TRIT_STORE(12, 13, 14, 15, 768)
#define TRIT_STORES5 TRIT_STORES4 TRIT_STORE(16, 17, 18, 19, 1024)
#define TRIT_STORES6 TRIT_STORES5 TRIT_STORE(20, 21, 22, 23, 1280)
#define TRIT_QS1 TRIT_QROW(0, 1, 2, 3, TRIT_R0("ocs"))
#define TRIT_QS2 TRIT_QS1 TRIT_QROW(4, 5, 6, 7, TRIT_R1("ocs"))
#define TRIT_QS3 TRIT_QS2 TRIT_QROW(8, 9, 10, 11, TRIT_R2("ocs"))
#define TRIT_QS4 TRIT_QS3 TRIT_QROW(12, 13, 14, 15, TRIT_R3("ocs"))
#define TRIT_QS5 TRIT_QS4 TRIT_QROW(16, 17, 18, 19, TRIT_R4("ocs"))
#define TRIT_QS6 TRIT_QS5 TRIT_QROW(20, 21, 22, 23, TRIT_R5("ocs"))
#define TRIT_QMS1 TRIT_QMROW(0, 1, 2, 3, TRIT_R0("ocs"))
#define TRIT_QMS2 TRIT_QMS1 TRIT_QMROW(4, 5, 6, 7, TRIT_R1("ocs"))
#define TRIT_QMS3 TRIT_QMS2 TRIT_QMROW(8, 9, 10, 11, TRIT_R2("ocs"))
#define TRIT_QMS4 TRIT_QMS3 TRIT_QMROW(12, 13, 14, 15, TRIT_R3("ocs"))
#define TRIT_QMS5 TRIT_QMS4 TRIT_QMROW(16, 17, 18, 19, TRIT_R4("ocs"))
#define TRIT_QMS6 TRIT_QMS5 TRIT_QMROW(20, 21, 22, 23, TRIT_R5("ocs"))

#define TRIT_TILE_ASM(body)                                                                                     \
  __asm__ volatile(body                                                                                         \
                   : [w] "+r"(w), [taps] "+r"(taps), [nt] "+r"(ntaps), [a0] "=&r"(a0), [a3] "=&r"(a3), [k] "=&r"(k) \
                   : [a] "r"(a), [lda] "r"(lda), [lda3] "r"(lda3), [ks] "r"(ksteps), [epi] "r"(epi), [out] "r"(out), \
                     [ocs] "r"(ocs)                                                                             \
                   : "memory", "cc", "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", \
                     "zmm10", "zmm11", "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19",   \
                     "zmm20", "zmm21", "zmm22", "zmm23", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29",   \
                     "zmm30", "zmm31")
#define TRIT_BODY(start, n) start TRIT_HEAD TRIT_ROWS##n TRIT_TAIL
#define TRIT_TILE_ENDINGS(start, n)                                                                \
  if constexpr (E == kStore) TRIT_TILE_ASM(TRIT_BODY(start, n) TRIT_STORES##n);                    \
  if constexpr (E == kFused) TRIT_TILE_ASM(TRIT_BODY(start, n) TRIT_EPILOGUE TRIT_QS##n);           \
  if constexpr (E == kFusedMult) TRIT_TILE_ASM(TRIT_BODY(start, n) TRIT_EPILOGUE TRIT_QMS##n);
#define TRIT_TILE(n)                                 \
  if constexpr (R == n && !Init) {                   \
    TRIT_TILE_ENDINGS(TRIT_ZEROS##n, n)              \
  }                                                  \
  if constexpr (R == n && Init) {                    \
    TRIT_TILE_ENDINGS(TRIT_LOADS##n, n)              \
  }

// R rows x 64 channels. kStore writes int32 to out ([R][64]); the fused endings write bytes
// to out + r * ocs using *epi. Init: the accumulators start from epi->init, else from 0.
template <int R, Ending E, bool Init>
void micro_tile(const uint8_t* a, int64_t lda, const int8_t* w, const int64_t* taps, int64_t ntaps, int64_t ksteps,
                const Epilogue32* epi, void* out, int64_t ocs) {
  const int64_t lda3 = 3 * lda;
  const uint8_t *a0, *a3;
  int64_t k;
  TRIT_TILE(1)
  TRIT_TILE(2)
  TRIT_TILE(3)
  TRIT_TILE(4)
  TRIT_TILE(5)
  TRIT_TILE(6)
}

// Any tile: the assembly above for 64 channels, intrinsics for narrow layers; the same loops.
// With a fused add (layer.h), the tile's bytes go to `stage` first, then through add_rows with
// the residual into the output (so that the output may be the residual itself).
// A slice of K (64 channels only, conv below): the accumulators start from `init` ([MR][64]
// int32) when it is set, and end in `partial` (the same layout) instead of the output when it is.
template <int MR, int NV>
void tile(const ConvLayer& L, const uint8_t* a, int64_t lda, const int8_t* wb, const int64_t* taps, int64_t ntaps,
          int64_t ksteps, int64_t m, int32_t o0, const uint8_t* residual, void* out, const int32_t* init,
          int32_t* partial) {
  alignas(64) int32_t sums[6 * 64];
  alignas(64) uint8_t stage[6 * 64];
  const int64_t elem = L.out_int32 ? 4 : 1;
  void* const dst = L.residual ? static_cast<void*>(stage) : static_cast<uint8_t*>(out) + (m * L.ocs + o0) * elem;
  const int64_t stride = L.residual ? 64 : L.ocs;
  auto finish = [&] {
    if (!L.residual) return;
    const int64_t at = m * L.ocs + o0, n = L.ocs - o0 < 16 * NV ? L.ocs - o0 : 16 * NV;
    add_rows(L.add, stage, 64, residual + at, L.ocs, static_cast<uint8_t*>(out) + at, L.ocs, MR, n);
  };
  if constexpr (NV == 4) {
    const bool fused = L.fits32 && !L.out_int32 && o0 + 64 <= L.ocs;
    const Epilogue32 epi{fused ? L.bias32.data() + o0 : nullptr, fused ? L.shr32.data() + o0 : nullptr,
                         fused ? L.mult32.data() + o0 : nullptr, L.lo, L.hi, init};
    auto run = [&]<Ending E>(void* to, int64_t to_stride) {
      if (init) micro_tile<MR, E, true>(a, lda, wb, taps, ntaps, ksteps, &epi, to, to_stride);
      else micro_tile<MR, E, false>(a, lda, wb, taps, ntaps, ksteps, &epi, to, to_stride);
    };
    if (partial) return run.template operator()<kStore>(partial, 0);
    if (fused) {
      if (L.unit_mult) run.template operator()<kFused>(dst, stride);
      else run.template operator()<kFusedMult>(dst, stride);
      return finish();
    }
    run.template operator()<kStore>(sums, 0);
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
  store_tile(L, sums, MR, NV, o0, dst, stride);
  finish();
}

template <int NV>
void tile_rows(int rows, const ConvLayer& L, const uint8_t* a, int64_t lda, const int8_t* wb, const int64_t* taps,
               int64_t ntaps, int64_t ksteps, int64_t m, int32_t o0, const uint8_t* residual, void* out,
               const int32_t* init = nullptr, int32_t* partial = nullptr) {
  switch (rows) {
    case 6: return tile<6, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, residual, out, init, partial);
    case 5: return tile<5, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, residual, out, init, partial);
    case 4: return tile<4, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, residual, out, init, partial);
    case 3: return tile<3, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, residual, out, init, partial);
    case 2: return tile<2, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, residual, out, init, partial);
    default: return tile<1, NV>(L, a, lda, wb, taps, ntaps, ksteps, m, o0, residual, out, init, partial);
  }
}

// K slices: a layer whose weight block (64 * k bytes) is larger than kSliceMin runs each block
// over slices of k of about kSliceBytes of weights that never cross a kernel row, every tile of a
// chunk through one slice before the next, the accumulators kept between slices in scratch; so a
// slice of weights, read once from L2 or L3, serves every tile of the chunk from L1. Smaller
// blocks run each tile over all of k (the block stays in L2 between tiles). Measured on
// ResNet-50 at batch 1: the 3x3 layers of stage 5 (k = 4608, 49 rows) took 0.80-0.90x the time
// sliced; stage 4's 3x3 and stage 5's 1x1 layers (k = 2048-2304) gained nothing above this
// machine's noise, so they are not sliced.
constexpr int64_t kSliceBytes = 24576;
constexpr int64_t kSliceMin = 262144;
constexpr int32_t kMaxSlices = 64;

bool sliced(const ConvLayer& L) {
  return L.nr == 64 && int64_t{L.k} * 64 > kSliceMin && L.tap_offsets.size() <= static_cast<size_t>(kMaxSlices);
}

// A sliced layer's slices: each tap (kernel row) cut into the same number of slices, at most
// kMaxSlices in all.
struct Slices {
  int32_t n = 0;
  int64_t k0[kMaxSlices];     // first k of slice s (gathered rows read there)
  int64_t place[kMaxSlices];  // in place: slice s's offset from a row's tap (0, 0)
  int64_t ksteps[kMaxSlices];
};

Slices make_slices(const ConvLayer& L) {
  Slices S;
  const int64_t taps = static_cast<int64_t>(L.tap_offsets.size());
  const int64_t row_ksteps = int64_t{L.window.kernel_w} * L.cs / 4;
  int64_t per_tap = (row_ksteps * 256 + kSliceBytes - 1) / kSliceBytes;
  if (per_tap * taps > kMaxSlices) per_tap = kMaxSlices / taps;
  if (per_tap < 1) per_tap = 1;
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t i = 0; i < per_tap; ++i) {
      const int64_t u0 = row_ksteps * i / per_tap, u1 = row_ksteps * (i + 1) / per_tap;
      S.k0[S.n] = t * row_ksteps * 4 + 4 * u0;
      S.place[S.n] = L.tap_offsets[static_cast<size_t>(t)] + 4 * u0;
      S.ksteps[S.n] = u1 - u0;
      ++S.n;
    }
  return S;
}

// Rows per chunk, a multiple of the micro tile. Gathered: about 192 KB of taps, so that a chunk
// and one weight block (<= 64 * k bytes) share the L2 cache and each block streams once per
// chunk. Direct (read in place, nothing gathered): about 24 KB, so that the chunk's rows stay
// in L1 beside the block (measured: 1x1 layers of stages 3-4 went from 67 % to 87 % of the
// ceiling against 192 KB). Sliced: about 480 KB, so that the slices' weights stream once for
// all the rows of an image at stage 5 (49, where 192 KB made chunks of 42 and 7).
int64_t chunk_rows(const ConvLayer& L) {
  const int64_t bytes = sliced(L) ? 491520 : L.direct ? 24576 : 196608;
  const int64_t rows = bytes / L.k / kMr * kMr;
  return rows < kMr ? kMr : rows > kMaxTiles * kMr ? kMaxTiles * kMr : rows;
}

constexpr int64_t kTileInts = 6 * 64;  // one tile's accumulators between slices

size_t scratch_bytes(const ConvLayer& L) {
  return (L.direct ? 0 : static_cast<size_t>(chunk_rows(L) * L.k)) +
         (sliced(L) ? 2 * kMaxTiles * kTileInts * sizeof(int32_t) : 0);
}

void conv(const ConvLayer& L, const void* weights_, const uint8_t* in, const uint8_t* residual, void* out, int64_t m0,
          int64_t m1, int32_t b0, int32_t b1, void* scratch) {
  const int64_t chunk = chunk_rows(L);
  uint8_t* gathered = static_cast<uint8_t*>(scratch);
  const int32_t nv = L.nr / 16;
  const int64_t block_bytes = int64_t{L.nr} * L.k;
  const int8_t* weights = static_cast<const int8_t*>(weights_);
  const int64_t zero_tap = 0;
  const int64_t row_ksteps = int64_t{L.window.kernel_w} * L.cs / 4;
  const uint8_t* base[2 * kMaxTiles];
  const bool align_rows = !L.direct && L.ow >= 2 * kMr;
  const bool slicing = sliced(L);
  Slices S;
  if (slicing) S = make_slices(L);
  int32_t* partial = reinterpret_cast<int32_t*>(gathered + (L.direct ? 0 : chunk * L.k));
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
    for (int32_t b = b0; b < b1; ++b) {
      const int8_t* wb = weights + b * block_bytes;
      if (slicing) {
        for (int32_t s = 0; s < S.n; ++s)
          for (int64_t t = 0; t < tiles; ++t) {
            const int64_t m = start[t];
            const int rows = static_cast<int>(start[t + 1] - m);
            const bool place = base[t] != nullptr;
            const uint8_t* a = place ? base[t] : gathered + (m - c0) * L.k;
            int32_t* acc = partial + t * kTileInts;
            tile_rows<4>(rows, L, a, place ? L.tap_lda : L.k, wb + S.k0[s] * 64, place ? &S.place[s] : &S.k0[s], 1,
                         S.ksteps[s], m, b * L.nr, residual, out, s > 0 ? acc : nullptr,
                         s + 1 < S.n ? acc : nullptr);
          }
        continue;
      }
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t m = start[t];
        const int rows = static_cast<int>(start[t + 1] - m);
        const bool place = base[t] != nullptr;
        const uint8_t* a = place ? base[t] : gathered + (m - c0) * L.k;
        const int64_t lda = place ? L.tap_lda : L.k;
        const int64_t* taps = place ? L.tap_offsets.data() : &zero_tap;
        const int64_t ntaps = place ? static_cast<int64_t>(L.tap_offsets.size()) : 1;
        const int64_t ksteps = place ? row_ksteps : L.k / 4;
        switch (nv) {
          case 4: tile_rows<4>(rows, L, a, lda, wb, taps, ntaps, ksteps, m, b * L.nr, residual, out); break;
          case 3: tile_rows<3>(rows, L, a, lda, wb, taps, ntaps, ksteps, m, b * L.nr, residual, out); break;
          case 2: tile_rows<2>(rows, L, a, lda, wb, taps, ntaps, ksteps, m, b * L.nr, residual, out); break;
          default: tile_rows<1>(rows, L, a, lda, wb, taps, ntaps, ksteps, m, b * L.nr, residual, out); break;
        }
      }
    }
  }
}

const KernelTable kTable{Isa::Avx512Vnni, "avx512vnni", 4, pack_weights, expand_quads, scratch_bytes, chunk_rows, conv, add, relu_s8_bytes,
                         max_pool_bytes, average_pool_bytes, global_average_pool_bytes, avx512vnni_conv2d_f32,
                         kAvx512FloatBlock, avx512vnni_conv2d_f32_fma};

}  // namespace

const KernelTable* avx512vnni_table() { return &kTable; }

void avx512vnni_store_rows(const ConvLayer& L, const int32_t* sums, int64_t rows, int64_t m, int32_t o0,
                           const uint8_t* residual, void* out) {
  if (L.fits32 && !L.out_int32 && o0 + 64 <= L.ocs) {
    // A whole block of 64 channels in int32 lanes (store16_32's arithmetic), the channels'
    // constants loaded once for all the rows; with a fused add, the rows staged, then added at once.
    __m512i bias[4], shr[4], mult[4];
    for (int j = 0; j < 4; ++j) {
      bias[j] = _mm512_loadu_si512(L.bias32.data() + o0 + 16 * j);
      shr[j] = _mm512_loadu_si512(L.shr32.data() + o0 + 16 * j);
      mult[j] = L.unit_mult ? _mm512_set1_epi32(1) : _mm512_loadu_si512(L.mult32.data() + o0 + 16 * j);
    }
    const __m512i lo = _mm512_set1_epi32(L.lo), hi = _mm512_set1_epi32(L.hi);
    alignas(64) uint8_t stage[32 * 64];
    for (int64_t r0 = 0; r0 < rows; r0 += 32) {
      const int64_t n = rows - r0 < 32 ? rows - r0 : 32, at = (m + r0) * L.ocs + o0;
      uint8_t* dst = L.residual ? stage : static_cast<uint8_t*>(out) + at;
      const int64_t stride = L.residual ? 64 : L.ocs;
      for (int64_t r = 0; r < n; ++r)
        for (int j = 0; j < 4; ++j) {
          __m512i v = _mm512_load_si512(sums + (r0 + r) * 64 + 16 * j);
          if (!L.unit_mult) v = _mm512_mullo_epi32(v, mult[j]);
          v = _mm512_srav_epi32(_mm512_add_epi32(v, bias[j]), shr[j]);
          v = _mm512_max_epi32(_mm512_min_epi32(v, hi), lo);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + r * stride + 16 * j), _mm512_cvtepi32_epi8(v));
        }
      if (L.residual)
        add_rows(L.add, stage, 64, residual + at, L.ocs, static_cast<uint8_t*>(out) + at, L.ocs, n, 64);
    }
    return;
  }
  const int64_t elem = L.out_int32 ? 4 : 1;
  alignas(64) uint8_t stage[kMr * 64];
  for (int64_t r0 = 0; r0 < rows; r0 += kMr) {
    const int n = static_cast<int>(rows - r0 < kMr ? rows - r0 : kMr);
    const int64_t at = (m + r0) * L.ocs + o0;
    if (!L.residual) {
      store_tile(L, sums + r0 * 64, n, 4, o0, static_cast<uint8_t*>(out) + at * elem, L.ocs);
      continue;
    }
    store_tile(L, sums + r0 * 64, n, 4, o0, stage, 64);
    add_rows(L.add, stage, 64, residual + at, L.ocs, static_cast<uint8_t*>(out) + at, L.ocs, n,
             L.ocs - o0 < 64 ? L.ocs - o0 : 64);
  }
}

}  // namespace trit::k8
