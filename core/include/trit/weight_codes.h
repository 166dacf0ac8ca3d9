// Integer weight codes: the layout of a layer's weights, its clusters, and the packing of codes
// into the bytes schema/trit.fbs defines.
//
//   Int8PerChannel:   one int8 per weight, in [-127, 127]
//   Int4Clustered:    4-bit two's complement in [-7, 7], two per byte, low nibble first
//   TernaryClustered: 2 bits per weight, 0 -> 0, 1 -> +1, 2 -> -1 (3 is invalid), four per byte,
//                     lowest bits first
// Codes are in [O][I][KH][KW] order. Each cluster has an integer scale in [1, 127] (uint8), and
// each output channel a power-of-two exponent: the weight's value is code * scale * 2^-e_o.
// Int8 per channel has one "cluster" per output channel, whose scale is the requantization
// multiplier instead.
//
// Every encoding runs as int8 on the fast kernels: W = code * cluster scale must lie in
// [-127, 127], so a cluster's scale is at most max_cluster_scale(encoding).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "trit/types.h"

namespace trit {

// What a layer's weights are, without their bytes: a plain value the kernels take.
struct WeightLayout {
  WeightEncoding encoding = WeightEncoding::Float32;
  std::array<int32_t, 4> shape{};  // O, I, KH, KW
  int32_t cluster_size = 0;        // N (clustered encodings)
  ClusterShape cluster_shape = ClusterShape::Kernels;

  int64_t count() const { return int64_t{shape[0]} * shape[1] * shape[2] * shape[3]; }
};

// Packs codes (each within its encoding's range) into the file layout.
std::vector<uint8_t> pack_codes(WeightEncoding encoding, std::span<const int8_t> codes);
// Unpacks a layer's codes from `bytes` (the file layout of layout.count() codes); throws
// trit::Error naming `layer` when a code is invalid.
std::vector<int8_t> unpack_codes(const WeightLayout& layout, std::span<const uint8_t> bytes, const std::string& layer);

// Index of the cluster holding weight [o][i][ky][kx] (its scale's index):
//   Int8PerChannel: o
//   Kernels:        o * ceil(I / N) + i / N
//   Channels:       (o * KH * KW + ky * KW + kx) * ceil(I / N) + i / N
int64_t cluster_of(const WeightLayout& layout, int32_t o, int32_t i, int32_t ky, int32_t kx);
// Clusters of a layer: one per output channel for Int8PerChannel, else per the cluster shape;
// 0 when the cluster size is invalid.
int64_t cluster_count(const WeightLayout& layout);
// Bytes `count` weights of an encoding take in the file.
int64_t weight_code_bytes(WeightEncoding encoding, int64_t count);

// Largest |code| of an encoding: 127, 7 or 1 (0 for float32).
int32_t max_code(WeightEncoding encoding);
// Largest cluster scale that keeps code * scale within int8: ternary 127, int4 18 (7 * 18 =
// 126), int8 per channel 127 (its multiplier).
int32_t max_cluster_scale(WeightEncoding encoding);

}  // namespace trit
