// Semantic checks of a Graph, the third layer of load_model and the guard of serialize_model.
//
// After check_graph(g) returns, code that runs g may assume without checking again:
//   - every index (node inputs and outputs, graph inputs and outputs) names a tensor;
//   - nodes are in execution order: each input is a graph input or the output of an earlier
//     node, and each tensor is written once (so the graph has no cycle);
//   - each node has the inputs, outputs, options, weights and bias its op needs, with shapes
//     that agree (output shapes are recomputed from the inputs and windows);
//   - every dimension is in [1, 2^24] and every tensor has fewer than 2^31 elements per image;
//   - weight and bias Blobs have exactly the size their encoding and shape imply, and float
//     weights and biases are finite;
//   - metadata: mean and scale have one entry per input channel, scales are finite and > 0,
//     labels are empty or one per output class.
// A failure throws trit::Error("<context>: <reason>").
#pragma once

#include <string>

#include "trit/graph.h"

namespace trit {

void check_graph(const Graph& graph, const std::string& context);

}  // namespace trit
