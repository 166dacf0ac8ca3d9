// doctest's main, plus TRIT_TBB_THREADS=N: at most N oneTBB threads for the whole run. Under
// ThreadSanitizer (scripts/sanitize.sh thread) N = 1: Debian's oneTBB is not instrumented, so
// the join at the end of every parallel loop would look like a race; with no TBB worker threads,
// the tests' own std::threads are the only concurrency and TSan sees all of its synchronization.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <tbb/global_control.h>

#include <cstdlib>
#include <memory>

int main(int argc, char** argv) {
  std::unique_ptr<tbb::global_control> limit;
  if (const char* n = std::getenv("TRIT_TBB_THREADS"); n && std::atoi(n) > 0)
    limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, std::atoi(n));
  return doctest::Context(argc, argv).run();
}
