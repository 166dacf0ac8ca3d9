#!/usr/bin/env bash
# Configures and builds trit into build/ (Release), with executables in build/bin/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" --parallel "${TRIT_BUILD_JOBS:-$(nproc)}"
