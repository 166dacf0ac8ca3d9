// The schedule (which steps may overlap) and the memory planner (its conflict rule), on
// hand-made step lists: runtime/schedule.h and runtime/memory_planner.h.
#include <doctest/doctest.h>

#include "memory_planner.h"
#include "schedule.h"

using namespace trit;

namespace {

// A ResNet block with a projection: t0 -> s0 -> t1; main path s1: t1 -> t2, s2: t2 -> t3;
// projection s3: t1 -> t4; s4 = Add(t3, t4) -> t5; s5: t5 -> t6.
Schedule block() {
  return Schedule({{0}, {1}, {2}, {1}, {3, 4}, {5}}, {1, 2, 3, 4, 5, 6}, 7);
}

bool overlap(const MemoryPlanner& p, int32_t a, int64_t size_a, int32_t b, int64_t size_b) {
  return p.offset(a) < p.offset(b) + size_b && p.offset(b) < p.offset(a) + size_a;
}

}  // namespace

TEST_CASE("a chain runs in order, one step a segment") {
  const Schedule s({{0}, {1}, {2}}, {1, 2, 3}, 4);
  REQUIRE(s.steps() == 3);
  CHECK(s.segments().size() == 3);
  for (const auto& seg : s.segments()) CHECK(seg.b.empty());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j) CHECK(s.precedes(i, j) == (i < j));
  CHECK(s.precedes(-1, 0));  // the input is written before the run
  CHECK(s.precedes(2, 3));   // the outputs are read after it
  CHECK_FALSE(s.precedes(0, -1));
}

TEST_CASE("a projection shortcut forms a segment of two chains that may overlap") {
  const Schedule s = block();
  REQUIRE(s.segments().size() == 4);
  CHECK(s.segments()[0].a == std::vector<int32_t>{0});
  CHECK(s.segments()[1].a == std::vector<int32_t>{1, 2});
  CHECK(s.segments()[1].b == std::vector<int32_t>{3});
  CHECK(s.segments()[2].a == std::vector<int32_t>{4});
  CHECK(s.segments()[3].a == std::vector<int32_t>{5});
  CHECK(s.deps(4) == std::vector<int32_t>{2, 3});
  // The chains do not depend on each other: neither precedes the other.
  for (int64_t main : {1, 2}) {
    CHECK_FALSE(s.precedes(main, 3));
    CHECK_FALSE(s.precedes(3, main));
  }
  CHECK(s.precedes(0, 3));
  CHECK(s.precedes(3, 4));
  CHECK(s.precedes(1, 5));
}

TEST_CASE("the planner keeps apart buffers of steps that may run at once, even when their lifetimes do not meet") {
  const Schedule s = block();
  MemoryPlanner p;
  // Scratch of s1 alone and of s3 alone: in the sequential order step 1 ends before step 3
  // starts, but the two chains may run together.
  const int32_t a = p.add_buffer(1000, {1});
  const int32_t b = p.add_buffer(1000, {3});
  // Touched only before the fork, and only after the join: these may share with anything.
  const int32_t early = p.add_buffer(5000, {-1, 0});
  const int32_t late = p.add_buffer(5000, {5, 6});
  p.plan(s);
  CHECK_FALSE(overlap(p, a, 1024, b, 1024));
  CHECK(p.offset(early) == 0);
  CHECK(p.offset(late) == 0);  // placed after early, which ends before it starts
  for (int32_t x : {a, b}) CHECK(p.offset(x) % 64 == 0);
  CHECK(p.arena_size() == 5056);  // 5000 rounded to 64; a and b fit side by side in it
  CHECK(p.lower_bound() == 5056);
}

TEST_CASE("the planner places the largest first at the lowest offset that fits, within its bound on a chain") {
  const Schedule s({{0}, {1}, {2}, {3}}, {1, 2, 3, 4}, 5);
  MemoryPlanner p;
  // t0..t4 of a chain: t_i is touched by steps i - 1 and i.
  const std::vector<int64_t> sizes{640, 1280, 64, 1280, 640};
  for (int64_t t = 0; t < 5; ++t) p.add_buffer(sizes[t], {t - 1, t});
  p.plan(s);
  // The two 1280-byte tensors never live together: both at 0; the others beside them.
  CHECK(p.offset(1) == 0);
  CHECK(p.offset(3) == 0);
  for (int32_t t = 0; t < 4; ++t) CHECK_FALSE(overlap(p, t, sizes[t], t + 1, sizes[t + 1]));
  CHECK(p.lower_bound() == 1280 + 640);
  CHECK(p.arena_size() == p.lower_bound());
}
