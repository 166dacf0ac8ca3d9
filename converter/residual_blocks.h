// Walks over a graph's residual structure, for the quantizer (trunk shares, mixed precision) and
// block-wise reconstruction.
//
// Segments: the graph cut at every point where a single tensor carries everything later nodes
// read (the trunk between residual blocks). For a ResNet: each stem node, each residual block
// (its main path, the projection if any, the Add and its ReLU), and each node of the head.
// Nodes are in execution order, so a segment is a range [begin, end) of node indices.
//
// Branch joins: from a layer's output, following single consumers, the first Add reached and the
// tensor that enters it: the branch of a block that layer feeds. Layers whose output is read
// twice, or that reach no Add (the classifier), join nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "trit/graph.h"

namespace trit {

struct Segment {
  size_t begin = 0, end = 0;  // nodes [begin, end)
  int32_t input = -1;         // the one tensor it reads from before it (a graph input or a cut)
  int32_t output = -1;        // the one tensor it leaves to the nodes after it
  bool residual = false;      // holds an Add
};
std::vector<Segment> residual_segments(const Graph& graph);

struct BranchJoin {
  int32_t add_node = -1;  // -1: the layer joins no Add
  int32_t entering = -1;  // the tensor of the branch that the Add reads
};
// For every node (meaningful for layers), where its output joins the trunk.
std::vector<BranchJoin> branch_joins(const Graph& graph);

}  // namespace trit
