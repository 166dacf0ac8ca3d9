#include "residual_blocks.h"

#include <algorithm>

namespace trit {

std::vector<Segment> residual_segments(const Graph& g) {
  const size_t n = g.nodes.size();
  // last_read[t]: the last node that reads tensor t (outputs: past the end).
  std::vector<size_t> last_read(g.tensors.size(), 0);
  std::vector<bool> read(g.tensors.size(), false);
  for (size_t i = 0; i < n; ++i)
    for (int32_t t : g.nodes[i].inputs) {
      last_read[t] = i;
      read[t] = true;
    }
  for (int32_t t : g.outputs) {
    last_read[t] = n;
    read[t] = true;
  }
  // Node i starts a segment when exactly one tensor written before it (or a graph input) is read
  // at or after it.
  auto crossing = [&](size_t i, int32_t* only) {
    int count = 0;
    auto consider = [&](int32_t t) {
      if (read[t] && last_read[t] >= i) {
        ++count;
        *only = t;
      }
    };
    for (int32_t t : g.inputs) consider(t);
    for (size_t j = 0; j < i; ++j) consider(g.nodes[j].outputs[0]);
    return count;
  };
  std::vector<Segment> out;
  for (size_t i = 0; i < n; ++i) {
    int32_t t = -1;
    if (crossing(i, &t) != 1 && !out.empty()) continue;
    if (!out.empty()) {
      out.back().end = i;
      out.back().output = t;
    }
    Segment s;
    s.begin = i;
    s.input = t;
    out.push_back(s);
  }
  if (!out.empty()) {
    out.back().end = n;
    out.back().output = g.outputs.empty() ? -1 : g.outputs[0];
  }
  for (Segment& s : out)
    for (size_t i = s.begin; i < s.end; ++i) s.residual = s.residual || g.nodes[i].op == OpCode::Add;
  return out;
}

std::vector<BranchJoin> branch_joins(const Graph& g) {
  std::vector<std::vector<size_t>> consumers(g.tensors.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int32_t t : g.nodes[i].inputs) consumers[t].push_back(i);
  std::vector<BranchJoin> joins(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int32_t t = g.nodes[i].outputs[0]; consumers[t].size() == 1;) {
      const Node& c = g.nodes[consumers[t][0]];
      if (c.op == OpCode::Add) {
        joins[i] = {static_cast<int32_t>(consumers[t][0]), t};
        break;
      }
      t = c.outputs[0];
    }
  return joins;
}

}  // namespace trit
