// One node of the integer reference: a layer prepared for iref::conv2d, and any node run on a
// batch of int32 tensors. The integer executor runs a graph through these; the converter runs one
// node at a time with them while it quantizes the network (it is the internal API the quantizer
// uses, not part of the installed one).
//
// A layer left in float (trit-convert --layer NAME=float) holds its float weights in the float
// reference's layout instead: its integer input is turned into floats exactly (m * 2^-f), run
// through the float reference, and its output rounded to the output's exponent (half up,
// saturated): the one place floats run inside an integer model, asked for by the user.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "trit/graph.h"

namespace trit {

struct PreparedLayer {
  bool is_float = false;
  std::vector<float> float_packed;  // float layers: ref::pack_conv_weights
  std::vector<int16_t> packed;      // iref::expand_weights; empty after prepare_requant
  std::vector<int32_t> multiplier, shift;  // per output channel (requant.h)
  std::vector<int64_t> bias;
  int32_t lo = 0, hi = 255;               // the output's range (ReLU floor included)
};

// Throws trit::Error naming the layer when its encoding, codes, exponents or shifts are
// unusable (shifts outside [-24, 62]).
PreparedLayer prepare_layer(const Graph& graph, const Node& node);
// The same without the expanded weights (packed stays empty; float layers are complete).
PreparedLayer prepare_requant(const Graph& graph, const Node& node);
// The layer's codes and cluster scales as the integer kernels read them (owning the codes).
struct UnpackedWeights {
  WeightLayout layout;
  std::vector<int8_t> codes;       // [O][I][KH][KW]
  std::span<const uint8_t> scales;  // into the node's blob
};
UnpackedWeights unpack_weights(const Node& node);

// Runs one node on `batch` images: inputs[k] points at the node's k-th input for the batch, out
// at its output. `layer` is the node's PreparedLayer (layers only).
void run_int_node(const Graph& graph, const Node& node, const PreparedLayer* layer, int32_t batch,
                  const std::vector<const int32_t*>& inputs, int32_t* out);

}  // namespace trit
