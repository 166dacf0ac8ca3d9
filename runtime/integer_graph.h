// Integer graphs: what makes a Graph one the integer pipeline runs.
//
// An integer model has an integer input (u8 or s8: the input quantizer's output). Every tensor is
// integer; activations are 8-bit (the kernels' bounds rest on it) and int32 is only for graph
// outputs nobody reads. Nodes that are not layers keep their exponents within what the integer
// kernels rescale: MaxPool, Flatten and Relu keep their input's exponent; Add and the average
// pools rescale by at most 2^24. Layers are checked when they are prepared (int_node.h).
#pragma once

#include "trit/graph.h"

namespace trit {

// Whether a graph holds an integer model (its input is quantized).
bool is_integer_model(const Graph& graph);
// Throws trit::Error naming the tensor or node that breaks the rules above.
void check_integer_graph(const Graph& graph);

}  // namespace trit
