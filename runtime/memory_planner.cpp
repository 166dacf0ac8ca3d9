#include "memory_planner.h"

#include <algorithm>
#include <numeric>
#include <utility>

namespace trit {

int32_t MemoryPlanner::add_buffer(int64_t bytes, std::vector<int64_t> steps) {
  size_.push_back((bytes + 63) / 64 * 64);
  steps_.push_back(std::move(steps));
  return static_cast<int32_t>(size_.size() - 1);
}

void MemoryPlanner::plan(const Schedule& schedule) {
  const size_t n = size_.size();
  // Whether every step touching a precedes every step touching b.
  auto before = [&](size_t a, size_t b) {
    for (int64_t sa : steps_[a])
      for (int64_t sb : steps_[b])
        if (!schedule.precedes(sa, sb)) return false;
    return true;
  };
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return size_[a] > size_[b]; });
  offset_.assign(n, 0);
  arena_ = 0;
  std::vector<int32_t> placed;
  for (int32_t b : order) {
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int32_t p : placed)
      if (!before(p, b) && !before(b, p)) busy.emplace_back(offset_[p], offset_[p] + size_[p]);
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (const auto& [lo, hi] : busy) {
      if (at + size_[b] <= lo) break;
      at = std::max(at, hi);
    }
    offset_[b] = at;
    placed.push_back(b);
    arena_ = std::max(arena_, at + size_[b]);
  }
  // The bound: the most bytes alive at one step of the sequential order.
  lower_bound_ = 0;
  const auto end = static_cast<int64_t>(schedule.steps());
  for (int64_t i = -1; i <= end; ++i) {
    int64_t alive = 0;
    for (size_t b = 0; b < n; ++b) {
      const auto [first, last] = std::minmax_element(steps_[b].begin(), steps_[b].end());
      if (!steps_[b].empty() && *first <= i && i <= *last) alive += size_[b];
    }
    lower_bound_ = std::max(lower_bound_, alive);
  }
}

}  // namespace trit
