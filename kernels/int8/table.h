// The kernel table: one entry per instruction set, chosen once at run time.
//
// Each path lives in its own translation unit with its own -m flags (int8/scalar.cpp,
// x86/avx2/int8.cpp, x86/avx512vnni/int8.cpp, x86/amx/int8.cpp); nothing else in the build uses
// AVX2, AVX-512 or AMX, so a machine without them never executes their instructions. The amx
// path is the avx512vnni table with its own conv (and chunk and scratch sizes): the tiles run the
// layers whose taps come in whole 64-byte rows, the avx512vnni conv the rest. select_isa()
// detects the CPU once (CPUID, and XGETBV for the OS-enabled register state; for AMX, the
// process's permission too) and honours TRIT_ISA=ref|avx2|avx512vnni|amx, refusing a path the
// CPU lacks with trit::Error.
//
// Contract of every entry (layer.h describes the layouts and the arithmetic):
//   pack_weights  W [o][k] int8 (k in (ky, kx, c) order, padded channels 0) -> layer.weights,
//                 layer.nr, layer.blocks. Called once, at prepare.
//   group         g: consecutive elements of one output channel in the packed layout (a row
//                 of the layout is nr * g elements; layer.h, CompactWeights).
//   expand        rows [r0, r1) of layer.compact into `weights`, the whole packed layout
//                 (compact.expanded_bytes(), 64-byte aligned): bit for bit what pack_weights
//                 wrote. Disjoint row ranges may run on different threads at once.
//   conv          rows [m0, m1) of the batch's M = N * oh * ow output rows, packed blocks
//                 [b0, b1) (channels [b0 * nr, min(b1 * nr, o))), with the packed weights at
//                 `weights` (layer.weights, or the expanded compact form). Disjoint ranges may run on
//                 different threads at once. A block range that ends at `blocks` also writes
//                 the output's padded channels [o, ocs) with 0. With layer.residual, `residual`
//                 is the fused add's other operand (layer.h), else nullptr. `scratch` holds
//                 scratch_bytes(layer) bytes, 64-byte aligned, owned by the calling thread.
//                 Kernels allocate nothing and use no std:: containers (a container's
//                 out-of-line code compiled with AVX-512 flags could be what the linker keeps).
//   add, relu     n bytes, elementwise; out may alias an input.
//   pools         one image.
//   conv_f32      the float reference's convolution (float_ref.h, ref::conv2d: its contract and
//                 its bits, tiled for the path's vectors; float_conv_generic.h). The ref path's
//                 entry is the reference itself.
//   f32_block     output channels per block of the fused float convolution's packed weights
//                 (float_nhwc.h, pack_fma_weights).
//   conv_f32_fma  the fused float convolution (float_nhwc.h: FmaConv, its layout and its bits,
//                 the same on every path; float_fma_generic.h): output pixels [q0, q1) of blocks
//                 [b0, b1). Disjoint ranges may run on different threads at once.
#pragma once

#include <cstdint>

#include "float_nhwc.h"
#include "int8/layer.h"
#include "trit/types.h"

namespace trit::k8 {

struct KernelTable {
  Isa isa;
  const char* name;
  int32_t group;       // consecutive elements of one output channel in the packed layout
  void (*pack_weights)(ConvLayer& layer, const int8_t* w);
  void (*expand)(const ConvLayer& layer, int64_t r0, int64_t r1, void* weights);
  // Bytes of scratch one conv call needs (gathered rows; a path's partial sums); the caller owns
  // it, one per thread.
  size_t (*scratch_bytes)(const ConvLayer& layer);
  // Rows a conv call should get: the path's cache-sized chunk.
  int64_t (*chunk_rows)(const ConvLayer& layer);
  void (*conv)(const ConvLayer& layer, const void* weights, const uint8_t* in, const uint8_t* residual, void* out,
               int64_t m0, int64_t m1, int32_t b0, int32_t b1, void* scratch);
  void (*add)(const AddParams& p, const uint8_t* a, const uint8_t* b, uint8_t* out, int64_t n);
  void (*relu_s8)(const uint8_t* in, uint8_t* out, int64_t n);
  // Pools write the output rows [y0, y1) of one image (in and out point at its first byte), so
  // that one image's rows can be split over threads (batch 1).
  void (*max_pool)(const PoolParams& p, const uint8_t* in, uint8_t* out, int32_t y0, int32_t y1);
  void (*average_pool)(const PoolParams& p, const uint8_t* in, uint8_t* out, int32_t y0, int32_t y1);
  void (*global_average_pool)(const PoolParams& p, const uint8_t* in, uint8_t* out);
  void (*conv_f32)(const float* in, Shape3 in_shape, const float* packed, const float* bias, const Window& window,
                   Activation act, float* out, Shape3 out_shape, int32_t o_begin, int32_t o_end);
  int32_t f32_block;
  void (*conv_f32_fma)(const FmaConv& conv, const float* in, const float* packed, const float* bias, float* out,
                       int64_t q0, int64_t q1, int32_t b0, int32_t b1);
};

// The entries; nullptr for a path this build or CPU cannot run.
const KernelTable& ref_table();
const KernelTable* avx2_table();
const KernelTable* avx512vnni_table();
const KernelTable* amx_table();

const char* to_string(Isa isa);
// Whether this CPU and OS can run a path.
bool isa_supported(Isa isa);
// The best supported path, or TRIT_ISA's when set. Throws trit::Error for an unknown name or a
// path the CPU lacks.
Isa select_isa();
// Parses "ref", "avx2", "avx512vnni", "amx"; throws trit::Error naming the text otherwise.
Isa parse_isa(const char* text);
// The table of a supported path; throws trit::Error for one this CPU lacks.
const KernelTable& table_for(Isa isa);

}  // namespace trit::k8
