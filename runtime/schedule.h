// The schedule of a prepared graph: which steps depend on which, and the order they run in.
//
// Steps are a graph's nodes in execution order; step i reads tensors inputs[i] and writes
// output[i]. A step depends on the steps that write its inputs, directly or not (reach).
// The run goes through segments in order; a segment is one chain of steps, or two independent
// chains that may run at the same time on different threads (a ResNet block's main path beside
// its projection shortcut). So two steps that do not depend on each other may overlap in time:
// precedes(s, t) is true only when s finishes before t starts in every run the dependencies
// allow, which is the rule the memory planner keeps tensors apart by.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace trit {

class Schedule {
 public:
  struct Segment {
    std::vector<int32_t> a, b;  // steps in order; b is empty when the segment is one chain
  };

  // inputs[i]: the tensors step i reads; output[i]: the one it writes; tensors: their count.
  // Tensors no step writes are graph inputs.
  Schedule(const std::vector<std::vector<int32_t>>& inputs, const std::vector<int32_t>& output, size_t tensors);

  size_t steps() const { return deps_.size(); }
  // The steps that write step i's inputs.
  const std::vector<int32_t>& deps(size_t i) const { return deps_[i]; }
  // Whether step s finishes before step t starts in every run. -1 stands for before the run
  // (the graph input is written), steps() for after it (the outputs are read).
  bool precedes(int64_t s, int64_t t) const;
  const std::vector<Segment>& segments() const { return segments_; }

 private:
  std::vector<std::vector<int32_t>> deps_;
  std::vector<std::vector<bool>> reach_;  // reach_[i][j]: step j depends on step i
  std::vector<Segment> segments_;
};

}  // namespace trit
