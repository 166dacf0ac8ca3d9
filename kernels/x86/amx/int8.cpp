// The amx path: Intel AMX tiles (tdpbusd: a 16 x 64 tile of u8 inputs times a 16 x 64 tile of
// s8 weight quads, summed into 16 x 16 int32, exactly, no saturation) for the convolutions whose
// taps come in whole 64-byte pieces; everything else is the avx512vnni path's (its table: the
// same packed weights, adds, pools and float code; its conv for the other layers).
// Compiled with the avx512vnni flags plus -mamx-tile -mamx-int8, for this file only.
//
// Tiled layers (amx_layer): nr = 64 and kw * cs a multiple of 64 (every kernel row's run of taps,
// and k, are whole 64-byte tile rows), in calls of 32 rows or more (amx_call, below). In
// ResNet-50: every layer but conv1 (3 channels) and, at batch 1, the classifier. Output channels
// past o in the last block are computed on the padding's zero weights and not stored, as on the
// avx512vnni path.
//
// Tiles (one configuration, loaded at each conv call, released at its end): tmm0-3 accumulate a
// group of 32 output rows (two halves of 16: tmm0-1 and tmm2-3) by 32 channels (tmm0, tmm2: the
// first 16; tmm1, tmm3: the next); tmm4-5 hold the two halves' inputs for one k-group of 64
// bytes; tmm6-7 the weights of that k-group for the 32 channels. The packed block is
// [k / 4][64][4] (avx512vnni path): k-group g of channels 16j.. is 16 rows of 64 bytes at
// block + 4096 g + 64 j, 256 bytes apart, which is the tile layout tdpbusd wants for B. A block
// of 64 channels runs as two passes of 32, re-reading the inputs.
//
// Inputs: a half's 16 rows are read in place (layer.h) when in_place_base allows it, with the
// tile's row stride tap_lda and one k-group sequence per kernel row; else gathered (im2col) into
// scratch, k bytes each, the tile's stride k. A half with fewer than 16 rows is always gathered,
// so that the tile's 16-row load never reads past the input tensor: its rows past the last read
// the scratch's slack (zeroed, or earlier rows), and their sums are never stored.
//
// The sums leave the tiles into [32][64] int32 in scratch and go through the avx512vnni path's
// epilogue (x86/store_rows.h). Integer sums are exact in any order: every path's bits.
#include <immintrin.h>

#include "int8/generic.h"
#include "int8/table.h"
#include "x86/store_rows.h"

namespace trit::k8 {
namespace {

constexpr int64_t kHalf = 16;            // rows per input tile
constexpr int64_t kGroup = 2 * kHalf;    // rows per tile group
constexpr int64_t kMaxGroups = 16;       // tile groups per chunk
constexpr int64_t kGroupInts = kGroup * 64;

// The tile configuration's memory form (palette 1): bytes per row and rows of each tile.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// The calls the tiles run: those of 32 rows or more. Fewer rows (the fully connected layer at
// batch 1: 1.1-1.5x slower tiled, measured with trit-bench on ResNet-50) go to the avx512vnni conv.
constexpr int64_t kMinRows = 32, kBigBlock = 262144;

bool amx_layer(const ConvLayer& L) { return L.nr == 64 && int64_t{L.window.kernel_w} * L.cs % 64 == 0; }
bool big(const ConvLayer& L) { return int64_t{L.k} * 64 > kBigBlock; }
bool amx_call(const ConvLayer& L, int64_t rows) { return amx_layer(L) && rows >= kMinRows; }

// Rows per chunk, a multiple of kGroup: about 192 KB of gathered taps (as the avx512vnni path's
// gathered chunk: the chunk's rows and one weight block share the L2 cache, and each block streams
// once per chunk); 480 KB where a block exceeds 256 KB (stage 5's 3x3 layers: an image's 49 rows
// in one chunk, so that each block streams once; 192 KB made chunks of 32 and 17, 1.14x the time).
int64_t chunk_rows(const ConvLayer& L) {
  if (!amx_layer(L)) return avx512vnni_table()->chunk_rows(L);
  const int64_t rows = (big(L) ? 491520 : 196608) / L.k / kGroup * kGroup;
  return rows < kGroup ? kGroup : rows > kMaxGroups * kGroup ? kMaxGroups * kGroup : rows;
}

// Gathered rows (a chunk, and a last half's 16-row slack), then one group's sums.
size_t scratch_bytes(const ConvLayer& L) {
  const size_t vnni = avx512vnni_table()->scratch_bytes(L);
  if (!amx_layer(L)) return vnni;
  const size_t amx = static_cast<size_t>((chunk_rows(L) + kHalf) * L.k) + kGroupInts * sizeof(int32_t);
  return amx > vnni ? amx : vnni;
}

// Where a half's input tile rows come from: row r's k-group g of kernel row t is at
// base + tap(t) + 64 g, rows `stride` bytes apart; tap(t) = taps[t] in place, t * run gathered.
struct Half {
  const uint8_t* base;
  int64_t stride;
  const int64_t* taps;  // nullptr: gathered
};

// Channels [32 c, 32 c + 32) of a block for one group (Two: both halves, else the first), its
// sums into sums[rows][64] at those channels.
template <bool Two>
void group_pass(const ConvLayer& L, const Half& h0, const Half& h1, const int8_t* wb, int c, int32_t* sums) {
  const int64_t ntaps = static_cast<int64_t>(L.tap_offsets.size());
  const int64_t run = int64_t{L.window.kernel_w} * L.cs, groups = run / 64;
  const int8_t* w = wb + 128 * c;
  _tile_zero(0);
  _tile_zero(1);
  if constexpr (Two) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t t = 0; t < ntaps; ++t) {
    const uint8_t* a0 = h0.base + (h0.taps ? h0.taps[t] : t * run);
    const uint8_t* a1 = Two ? h1.base + (h1.taps ? h1.taps[t] : t * run) : nullptr;
    for (int64_t g = 0; g < groups; ++g, w += 4096) {
      _tile_loadd(4, a0 + 64 * g, h0.stride);
      _tile_loadd(6, w, 256);
      _tile_loadd(7, w + 64, 256);
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      if constexpr (Two) {
        _tile_loadd(5, a1 + 64 * g, h1.stride);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
      }
    }
  }
  _tile_stored(0, sums + 32 * c, 256);
  _tile_stored(1, sums + 32 * c + 16, 256);
  if constexpr (Two) {
    _tile_stored(2, sums + kHalf * 64 + 32 * c, 256);
    _tile_stored(3, sums + kHalf * 64 + 32 * c + 16, 256);
  }
}

void conv(const ConvLayer& L, const void* weights_, const uint8_t* in, const uint8_t* residual, void* out, int64_t m0,
          int64_t m1, int32_t b0, int32_t b1, void* scratch) {
  if (!amx_call(L, m1 - m0)) return avx512vnni_table()->conv(L, weights_, in, residual, out, m0, m1, b0, b1, scratch);
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = kHalf;
  }
  _tile_loadconfig(&cfg);
  const int64_t chunk = chunk_rows(L);
  uint8_t* gathered = static_cast<uint8_t*>(scratch);
  int32_t* sums = reinterpret_cast<int32_t*>(gathered + (chunk + kHalf) * L.k);
  const int8_t* weights = static_cast<const int8_t*>(weights_);
  const int64_t block_bytes = int64_t{L.nr} * L.k;
  Half halves[2 * kMaxGroups];
  for (int64_t c0 = m0; c0 < m1; c0 += chunk) {
    const int64_t c1 = m1 < c0 + chunk ? m1 : c0 + chunk;
    const int64_t nh = (c1 - c0 + kHalf - 1) / kHalf;
    for (int64_t i = 0; i < nh; ++i) {
      const int64_t m = c0 + i * kHalf, rows = c1 - m < kHalf ? c1 - m : kHalf;
      const uint8_t* place = rows == kHalf ? in_place_base(L, in, m, kHalf) : nullptr;
      if (place != nullptr) {
        halves[i] = {place, L.tap_lda, L.tap_offsets.data()};
        continue;
      }
      uint8_t* a = gathered + (m - c0) * L.k;
      for (int64_t r = 0; r < rows; ++r) gather_row(L, in, m + r, a + r * L.k);
      halves[i] = {a, L.k, nullptr};
    }
    for (int32_t b = b0; b < b1; ++b) {
      const int8_t* wb = weights + b * block_bytes;
      for (int64_t i = 0; i < nh; i += 2) {
        const int64_t m = c0 + i * kHalf, rows = c1 - m < kGroup ? c1 - m : kGroup;
        for (int c = 0; c < 2; ++c) {
          if (rows > kHalf) group_pass<true>(L, halves[i], halves[i + 1], wb, c, sums);
          else group_pass<false>(L, halves[i], halves[i], wb, c, sums);
        }
        avx512vnni_store_rows(L, sums, rows, m, b * L.nr, residual, out);
      }
    }
  }
  _tile_release();
}

}  // namespace

const KernelTable* amx_table() {
  static const KernelTable table = [] {
    KernelTable t = *avx512vnni_table();
    t.isa = Isa::Amx;
    t.name = "amx";
    t.chunk_rows = chunk_rows;
    t.scratch_bytes = scratch_bytes;
    t.conv = conv;
    return t;
  }();
  return &table;
}

}  // namespace trit::k8
