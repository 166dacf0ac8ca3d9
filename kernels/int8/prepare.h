// Preparing one convolution or fully connected layer for a kernel path: the layer as the integer
// reference defines it (int_ref.h: codes, cluster scales, per-channel requantization), in, and a
// ConvLayer (layer.h) on the path's packed layout, out. Done once per layer, when a model is
// prepared; everything a run needs is then in the ConvLayer.
//
// What prepare does (layer.h states the layouts and the epilogue):
//   - expands every weight to W = code * cluster scale (int8 per channel: the code; its scale is
//     the requantization multiplier) and refuses a |W| above 127;
//   - reorders W to [o][(ky, kx, c)] with the input's channel stride, padded channels 0, and hands
//     it to the path's pack_weights;
//   - folds into each channel's bias the rounding constant 2^(s-1) and, for an s8 input, the
//     -128 * sum_k W offset of reading value + 128;
//   - decides the epilogue's form: shifts right only (shifts_right), exact in int32 (fits32),
//     unit multipliers (unit_mult);
//   - with spec.packed, for a ternary or int4 layer: packs the codes and the cluster scales the
//     way pack_weights packs W, and keeps them as the layer's CompactWeights (layer.h) instead of
//     the packed W, when every group of the layout lies in one cluster and that is smaller.
#pragma once

#include <string>

#include "int8/table.h"
#include "int_ref.h"

namespace trit::k8 {

struct ConvSpec {
  Shape3 in, out;          // one image's; a fully connected layer is [K, 1, 1] -> [O, 1, 1]
  Window window;           // the identity window for a fully connected layer
  bool in_signed = false;  // the input is s8
  bool in_biased = false;  // ... and stored as value + 128 (layer.h)
  bool out_int32 = false;  // writes int32 (a graph output), else bytes
  iref::LayerWeights weights;
  const iref::Requant* requant = nullptr;  // per output channel; [lo, hi] the output's range
  bool packed = false;     // keep ternary and int4 weights packed (ConvLayer::compact) where that is smaller
};

// Throws trit::Error naming `name` when the layer does not fit the kernels' bounds (a weight
// beyond 8 bits, more than 65536 taps per output).
ConvLayer prepare_conv(const ConvSpec& spec, const KernelTable& table, const std::string& name);

}  // namespace trit::k8
