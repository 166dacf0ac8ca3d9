// Packing and unpacking of integer weight codes (the layouts schema/trit.fbs defines).
//
//   Int8PerChannel:   one int8 per weight, in [-127, 127]
//   Int4Clustered:    4-bit two's complement in [-7, 7], two per byte, low nibble first
//   TernaryClustered: 2 bits per weight, 0 -> 0, 1 -> +1, 2 -> -1 (3 is invalid), four per byte,
//                     lowest bits first
// Codes are in [O][I][KH][KW] order. Cluster scales are indexed by cluster_of().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "trit/graph.h"

namespace trit {

// Packs codes (each within its encoding's range) into the file layout.
std::vector<uint8_t> pack_codes(WeightEncoding encoding, std::span<const int8_t> codes);
// Unpacks a layer's codes; throws trit::Error naming the layer when a code is invalid.
std::vector<int8_t> unpack_codes(const Weights& weights, const std::string& layer);

// Index into Weights::scales of the cluster holding weight [o][i][ky][kx]:
//   Int8PerChannel: o
//   Kernels:        o * ceil(I / N) + i / N
//   Channels:       (o * KH * KW + ky * KW + kx) * ceil(I / N) + i / N
int64_t cluster_of(const Weights& weights, int32_t o, int32_t i, int32_t ky, int32_t kx);

// Largest |code| of an encoding: 127, 7 or 1.
int32_t max_code(WeightEncoding encoding);

}  // namespace trit
