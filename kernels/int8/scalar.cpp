// The table's `ref` path: plain loops on the fast layout (layer.h). Baseline flags; every
// machine runs it. Weights: [blocks * nr][k] int8 with nr = 1.
#include "int8/generic.h"
#include "int8/table.h"
#include <cmath>

#include "float_fma_generic.h"
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

// The fused float convolution in scalars: std::fma rounds once, as a vector lane's fused
// multiply-add does, so this path gives the x86 paths' bits.
struct Lanes {
  using Vec = float;
  static constexpr int W = 1;
  static Vec load(const float* p) { return *p; }
  static Vec load_first(const float* p, int) { return *p; }
  static Vec splat(const float* p) { return *p; }
  static Vec fma(Vec a, Vec b, Vec c) { return std::fma(a, b, c); }
  static Vec relu(Vec v) { return v < 0 ? 0.0f : v; }
  static void store(float* p, Vec v) { *p = v; }
  static void store_first(float* p, Vec v, int) { *p = v; }
};
using Fma = FmaKernel<Lanes, 2, 4>;

void conv_f32_fma(const FmaConv& L, const float* in, const float* packed, const float* bias, float* out, int64_t q0,
                  int64_t q1, int32_t b0, int32_t b1) {
  Fma::run(L, in, packed, bias, out, q0, q1, b0, b1);
}

const KernelTable kTable{Isa::Ref, "ref", 4, pack_weights, expand_rows<int8_t, 4>, scratch_bytes, chunk_rows, conv, add_bytes, relu_s8_bytes,
                         max_pool_bytes, average_pool_bytes, global_average_pool_bytes, ref::conv2d, 4, conv_f32_fma};

}  // namespace

const KernelTable& ref_table() { return kTable; }

}  // namespace trit::k8
