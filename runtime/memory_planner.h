// The memory planner: where each buffer of a run lives in one arena.
//
// Algorithm: greedy by size (TensorFlow Lite's GreedyMemoryPlanner). Buffers are placed largest
// first (ties in the order they were added), each at the lowest offset that no buffer it
// conflicts with overlaps. Offsets and sizes are multiples of 64 bytes.
//
// The conflict rule: a buffer is touched by steps of a Schedule (schedule.h). Two buffers may
// share memory only when every step touching one precedes every step touching the other in
// every run the schedule allows. Lifetimes in the sequential order are not enough: the steps of
// two independent chains (a projection shortcut beside a block's main path) may run at the same
// time, so their buffers are kept apart even where the sequential order would let them meet.
//
// lower_bound() is the most bytes alive at one step of the sequential order (each buffer alive
// from the first step that touches it to the last): no plan can use less; a plan for a schedule
// with forks may need more.
#pragma once

#include <cstdint>
#include <vector>

#include "schedule.h"

namespace trit {

class MemoryPlanner {
 public:
  // A buffer of `bytes` (rounded up to 64), touched by `steps` (step indices of the schedule;
  // -1: before the run, as the graph input is; schedule.steps(): after it, as the outputs are).
  // Returns its index.
  int32_t add_buffer(int64_t bytes, std::vector<int64_t> steps);
  // Places every buffer added so far.
  void plan(const Schedule& schedule);

  int64_t offset(int32_t buffer) const { return offset_[buffer]; }
  int64_t arena_size() const { return arena_; }
  int64_t lower_bound() const { return lower_bound_; }

 private:
  std::vector<int64_t> size_;
  std::vector<std::vector<int64_t>> steps_;
  std::vector<int64_t> offset_;
  int64_t arena_ = 0, lower_bound_ = 0;
};

}  // namespace trit
