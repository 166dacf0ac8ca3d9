// The expansion of packed weights (layer.h, CompactWeights) into the int8 quad layout, with AVX2
// instructions: the avx512vnni path's KernelTable::expand. Its code (expand_quads_impl.h) is
// compiled into that path's translation unit and into the avx2 one, where this entry point
// exposes it so that the tests check it on any AVX2 CPU (the avx2 path itself packs int16 pairs).
#pragma once

#include <cstdint>

#include "int8/layer.h"

namespace trit::k8 {

// Rows [r0, r1) of layer.compact (group 4, int8 elements, nr a multiple of 8) into `weights`.
// Needs a CPU with AVX2.
void avx2_expand_quads(const ConvLayer& layer, int64_t r0, int64_t r1, void* weights);

}  // namespace trit::k8
