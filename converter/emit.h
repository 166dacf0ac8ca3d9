// Integer layer emission: a quantized layer's codes, cluster scales and exponents, and its float
// bias (corrected), written into the graph node as the file holds them.
//
// The bias is stored at the accumulator's scale: round(b_o * 2^(f_in + e_o)) as int32 (the
// quantizer caps e_o so that it fits; a bias that still does not fit is an error). A graph output
// written by the layer is int32 with the smallest accumulator exponent of its channels,
// min_o(f_in + e_o), clamped to [-32, 32]. A layer kept in float keeps its float weights and gets
// the corrected float bias; an int32 output of it takes the exponent that holds its largest value.
#pragma once

#include <vector>

#include "exponents.h"
#include "trit/graph.h"
#include "weight_quant.h"

namespace trit {

struct LayerEmission {
  WeightEncoding encoding = WeightEncoding::Float32;
  int32_t cluster = 0;
  ClusterShape shape = ClusterShape::Kernels;
  const quant::QuantizedLayer* quantized = nullptr;  // integer encodings
  std::vector<double> bias;                          // the float bias, corrected, per output
  const ExponentSample* float_output = nullptr;      // float layers with an int32 output: its values
};

// Writes node n of g (weights, bias, and the exponent of an int32 output tensor). Throws
// trit::Error naming the layer when a bias does not fit int32 at its scale.
void emit_layer(Graph& g, Node& n, const LayerEmission& e);

}  // namespace trit
