// The avx512vnni path's epilogue over sums in memory, for the amx path (x86/amx/int8.cpp), whose
// tiles leave their int32 sums in memory. Defined in x86/avx512vnni/int8.cpp with that path's
// flags: call it only where the avx512vnni path runs.
#pragma once

#include <cstdint>

#include "int8/layer.h"

namespace trit::k8 {

// Rows r in [0, rows) of sums ([rows][64] int32, 64-byte aligned: output row m + r, channels
// o0 + [0, 64), o0 a multiple of 64 in a layer with nr = 64) through layer.h's epilogue, and
// with L.residual through the fused add with `residual`, into the layer's output tensor `out`:
// exactly the bytes (or int32) the avx512vnni conv writes for them. Channels at and above L.ocs
// (L.o for int32 output) are not written. A whole block in int32 lanes (layer.h, fits32) with
// 8-bit output loads its channels' constants once for all the rows, and adds up to 32 staged rows
// at once; the rest goes through the avx512vnni tiles' own epilogue, at most 6 rows at a time.
void avx512vnni_store_rows(const ConvLayer& L, const int32_t* sums, int64_t rows, int64_t m, int32_t o0,
                           const uint8_t* residual, void* out);

}  // namespace trit::k8
