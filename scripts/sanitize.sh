#!/usr/bin/env bash
# The test suite under sanitizers, in its own build folder:
#
#   scripts/sanitize.sh [address,undefined|thread] [ctest -R/-E arguments...]
#
# address,undefined (the default) builds everything with AddressSanitizer and
# UndefinedBehaviorSanitizer (any report fails the test) into build-asan/ and runs the tests;
# thread builds with ThreadSanitizer into build-tsan/ and runs the concurrency tests. The
# kernels run on the best path this CPU has (sanitizers, unlike valgrind, run AVX-512 code).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
san=${1:-address,undefined}
shift || true
case $san in
  thread) build=$root/build-tsan ;;
  *) build=$root/build-asan ;;
esac
# -O1, as the sanitizers' documentation advises: at -O2 AddressSanitizer with UBSan took 40 %
# longer to compile (ResNet-8's conversions under it run about as fast either way).
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRIT_SANITIZE="$san" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" >/dev/null
cmake --build "$build" --parallel "${TRIT_BUILD_JOBS:-$(nproc)}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1
# OpenBLAS's own threads synchronize in code ThreadSanitizer cannot see (Debian's library is
# not instrumented): under it, BLAS runs in the calling thread.
[[ $san == thread ]] && export OPENBLAS_NUM_THREADS=1
if [[ $san == thread ]]; then
  # Debian's oneTBB is not instrumented: ThreadSanitizer cannot see the synchronization inside
  # it and reports the end of every parallel loop as a race. So the test data (made by
  # trit-convert, not under test here) is made with reports off, and the tests run with one TBB
  # thread (TRIT_TBB_THREADS, tests/test_main.cpp): their own std::threads (8 sessions on one
  # model, sessions made and dropped, models outliving sessions) are then the only concurrency.
  TSAN_OPTIONS=report_bugs=0 ctest --test-dir "$build" --output-on-failure -R "^make_"
  [[ $# -gt 0 ]] || set -- -R "threads|sessions|outlives|projection|ResNet-8"
  TRIT_TBB_THREADS=1 ctest --test-dir "$build" --output-on-failure --parallel "$(nproc)" --timeout 3000 -FA ".*" "$@"
  exit
fi
ctest --test-dir "$build" --output-on-failure --parallel "$(nproc)" --timeout 3000 "$@"
