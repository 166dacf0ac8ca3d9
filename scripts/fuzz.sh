#!/usr/bin/env bash
# Fuzzes trit's untrusted inputs with clang's libFuzzer, under the address and
# undefined-behaviour sanitizers:
#
#   scripts/fuzz.sh SECONDS [model|image|onnx ...]      (default: all three)
#
# Builds the targets in build-fuzz/ (clang from Debian's clang package), runs each for SECONDS
# on seeds made by tests/fuzz/make_seeds.py plus the inputs found before (tests/fuzz/<target>/),
# and copies every crashing or hanging input into tests/fuzz/<target>/ so that the normal test
# suite replays it from then on. Prints each target's executions, executions per second and
# what it found. The targets run one after another on one core each.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:?usage: scripts/fuzz.sh SECONDS [model|image|onnx ...]}
shift
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(model image onnx)
command -v clang++ >/dev/null || { echo "fuzz: clang++ is missing (apt-get install clang)" >&2; exit 1; }
build=$root/build-fuzz
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRIT_FUZZ=ON \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link" >/dev/null
cmake --build "$build" --parallel "${TRIT_BUILD_JOBS:-$(nproc)}" --target trit-convert "${targets[@]/#/fuzz_}" >/dev/null
seeds=$(mktemp -d)
/usr/bin/python3 "$root/tests/fuzz/make_seeds.py" "$build/bin/trit-convert" "$seeds"
status=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  mkdir "$work/corpus" "$work/found"
  cp "$seeds/$t/"* "$work/corpus/"
  cp "$root/tests/fuzz/$t/"* "$work/corpus/" 2>/dev/null || true
  started=$SECONDS
  set +e
  # -timeout is wall time: 30 s, so that a busy machine is not mistaken for a hang.
  "$build/bin/fuzz_$t" "$work/corpus" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
    -artifact_prefix="$work/found/" -print_final_stats=1 >"$work/log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$' || echo 0)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$work/log" | grep -o '[0-9]*$' || echo 0)
  corpus=$(ls "$work/corpus" | wc -l)
  found=0
  for f in "$work/found/"*; do
    [[ -f $f ]] || continue
    mkdir -p "$root/tests/fuzz/$t"
    cp "$f" "$root/tests/fuzz/$t/$(basename "$f")"
    found=$((found + 1))
  done
  echo "fuzz $t: $((SECONDS - started)) s, $runs executions, $speed per second, corpus $corpus inputs, $found found (exit $rc)"
  if [[ $found -gt 0 || $rc -ne 0 ]]; then
    status=1
    grep -E "ERROR|SUMMARY|runtime error" "$work/log" | head -5 || true  # (a slow unit has none)
  fi
  rm -rf "$work"
done
rm -rf "$seeds"
exit $status
