#!/usr/bin/env bash
# The instruction-set objects (kernels/x86/) must define no weak symbols: a weak inline function
# compiled there with AVX-512 flags could be the copy the linker keeps for every caller, and
# crash a machine without AVX-512 (style.md, point 6). Only the exception-personality reference
# every C++ object carries is allowed.
set -euo pipefail
status=0
for obj in "$@"; do
  weak=$(nm -C --defined-only "$obj" | awk '$2 ~ /^[WVuw]$/' | grep -v 'DW.ref.__gxx_personality_v0' || true)
  if [ -n "$weak" ]; then
    echo "$obj defines weak symbols:"
    echo "$weak"
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "ok: $# objects define no weak symbols"
exit "$status"
