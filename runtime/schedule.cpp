#include "schedule.h"

#include <algorithm>

namespace trit {

Schedule::Schedule(const std::vector<std::vector<int32_t>>& inputs, const std::vector<int32_t>& output,
                   size_t tensors) {
  const size_t ns = inputs.size();
  // Dependencies between steps, and their transitive closure.
  std::vector<int32_t> producer(tensors, -1);
  for (size_t i = 0; i < ns; ++i) producer[output[i]] = static_cast<int32_t>(i);
  deps_.resize(ns);
  for (size_t i = 0; i < ns; ++i)
    for (int32_t t : inputs[i])
      if (producer[t] >= 0 && std::find(deps_[i].begin(), deps_[i].end(), producer[t]) == deps_[i].end())
        deps_[i].push_back(producer[t]);
  reach_.assign(ns, std::vector<bool>(ns, false));
  for (size_t j = 0; j < ns; ++j)  // steps are in execution order: dependencies come first
    for (int32_t d : deps_[j]) {
      reach_[d][j] = true;
      for (size_t i = 0; i < ns; ++i)
        if (reach_[i][d]) reach_[i][j] = true;
    }

  // Segments: from each step, the longest run of steps that splits into two chains, each step
  // depending (within the run) only on its chain's previous step, the chains independent.
  for (size_t i = 0; i < ns;) {
    std::vector<int32_t> chain[2];
    size_t best = i;  // steps [i, best] form the best fork found
    for (size_t q = i; q < ns; ++q) {
      std::vector<int32_t> inside;
      for (int32_t d : deps_[q])
        if (d >= static_cast<int32_t>(i)) inside.push_back(d);
      int c = -1;
      if (inside.empty()) {
        if (chain[0].empty()) c = 0;
        else if (chain[1].empty()) c = 1;
      } else if (inside.size() == 1) {
        for (int k = 0; k < 2; ++k)
          if (!chain[k].empty() && chain[k].back() == inside[0]) c = k;
      }
      if (c < 0) break;
      chain[c].push_back(static_cast<int32_t>(q));
      if (!chain[0].empty() && !chain[1].empty()) best = q;
    }
    Segment seg;
    if (best > i) {  // a fork: keep the steps up to best, in their chains
      for (int k = 0; k < 2; ++k)
        for (int32_t st : chain[k])
          if (st <= static_cast<int32_t>(best)) (k == 0 ? seg.a : seg.b).push_back(st);
      i = best + 1;
    } else {
      seg.a.push_back(static_cast<int32_t>(i));
      ++i;
    }
    segments_.push_back(std::move(seg));
  }
}

bool Schedule::precedes(int64_t s, int64_t t) const {
  const auto end = static_cast<int64_t>(deps_.size());
  if (s == t) return false;
  if (s == -1 || t == end) return true;
  if (t == -1 || s == end) return false;
  return reach_[s][t];
}

}  // namespace trit
