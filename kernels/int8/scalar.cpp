// The table's `ref` path: plain loops on the fast layout (layer.h). Baseline flags; every
// machine runs it. Weights: [blocks * nr][k] int8 with nr = 1.
#include "int8/generic.h"
#include "int8/table.h"
#include "float_ref.h"

namespace trit::k8 {
namespace {

void pack_weights(ConvLayer& L, const int8_t* w) {
  L.nr = 1;
  L.blocks = L.o;
  L.weights = AlignedBytes(static_cast<size_t>(L.o) * L.k);
  std::copy(w, w + int64_t{L.o} * L.k, reinterpret_cast<int8_t*>(L.weights.data()));
}

// One gathered row, then one int32 per output channel of the range.
size_t scratch_bytes(const ConvLayer& L) { return (static_cast<size_t>(L.k) + 3) / 4 * 4 + 4 * static_cast<size_t>(L.o); }

int64_t chunk_rows(const ConvLayer&) { return 16; }

void conv(const ConvLayer& L, const void* weights, const uint8_t* in, const uint8_t* residual, void* out, int64_t m0,
          int64_t m1, int32_t b0, int32_t b1, void* scratch) {
  uint8_t* a = static_cast<uint8_t*>(scratch);
  int32_t* acc = reinterpret_cast<int32_t*>(a + (L.k + 3) / 4 * 4);
  const int8_t* w = static_cast<const int8_t*>(weights);
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* row = a;
    if (L.direct) row = in + m * L.cs;
    else gather_row(L, in, m, a);
    for (int32_t o = b0; o < b1; ++o) {
      int32_t s = 0;
      const int8_t* wo = w + int64_t{o} * L.k;
      for (int32_t k = 0; k < L.k; ++k) s += int32_t{wo[k]} * row[k];
      acc[o - b0] = s;
    }
    store_row(L, acc, m, b0, b1, residual, out);
  }
}

const KernelTable kTable{Isa::Ref, "ref", 1, 4, pack_weights, expand_rows<int8_t, 4>, scratch_bytes, chunk_rows, conv, add_bytes, relu_s8_bytes,
                         max_pool_bytes, average_pool_bytes, global_average_pool_bytes, ref::conv2d};

}  // namespace

const KernelTable& ref_table() { return kTable; }

}  // namespace trit::k8
