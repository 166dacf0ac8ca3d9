// Where each tensor of a batch lives in a session's arena: what Session::memory_plan() reports.
#pragma once

#include <cstdint>
#include <vector>

namespace trit {

struct MemoryPlan {
  int32_t batch = 0;
  std::vector<int64_t> offset;  // per tensor, 64-byte aligned; -1 for tensors never stored
  std::vector<int64_t> bytes;   // per tensor, for the batch
  int64_t arena_bytes = 0;      // the arena's size
  int64_t lower_bound = 0;      // the most bytes of tensors alive at one step (see memory_planner.h)
};

}  // namespace trit
