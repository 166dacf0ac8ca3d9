#!/usr/bin/env bash
# The installed package, as an application uses it: cmake --install into a temporary prefix,
# samples/embed built against it with find_package(trit), samples/embed/embed_c.c built with
# pkg-config through the C API; both must name the same top-1 label as infer, for a float and
# an int8 model (the family ResNet-18 the fixtures generate, labelled "class 0" to "class 999").
# With a third argument "python", the installed Python package too (/usr/bin/python3, PYTHONPATH
# at the prefix's lib/python3/dist-packages).
#   embed_test.sh BUILD_DIR SOURCE_DIR [python]
set -euo pipefail
build=$1
src=$2
python=${3:-}
bin=$build/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/inst" >/dev/null
cmake -S "$src/samples/embed" -B "$tmp/embed" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/inst" >/dev/null
cmake --build "$tmp/embed" >/dev/null
cc "$src/samples/embed/embed_c.c" -o "$tmp/embed_c" $(PKG_CONFIG_PATH="$tmp/inst/lib/pkgconfig" pkg-config --cflags --libs trit)

onnx=$build/tests/data/family/resnet18.onnx
labels=$tmp/labels.txt
/usr/bin/python3 - "$tmp" <<'PY'
import sys, numpy as np
from PIL import Image
rng = np.random.default_rng(1)
open(f"{sys.argv[1]}/labels.txt", "w").write("".join(f"class {c}\n" for c in range(1000)))
for i in range(3):
    Image.fromarray(rng.integers(0, 256, (70 + 9 * i, 90, 3), dtype=np.uint8)).save(f"{sys.argv[1]}/img{i}.png")
PY
mkdir "$tmp/calib"
cp "$tmp"/img1.png "$tmp"/img2.png "$tmp/calib/"
"$bin/trit-convert" "$onnx" -o "$tmp/float.trit" --preset torchvision --labels "$labels" >/dev/null 2>&1
"$bin/trit-convert" "$onnx" -o "$tmp/int8.trit" --preset torchvision --labels "$labels" --weights int8 \
  --calib "$tmp/calib" >/dev/null 2>&1
status=0
for m in float int8; do
  want=$("$bin/infer" --model "$tmp/$m.trit" --top 1 --json "$tmp/img0.png" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["top"][0]["label"])')
  got=$("$tmp/embed/embed" "$tmp/$m.trit" "$tmp/img0.png")
  got_c=$("$tmp/embed_c" "$tmp/$m.trit" "$tmp/img0.png")
  got_py=$want
  if [[ $python == python ]]; then
    got_py=$(PYTHONPATH="$tmp/inst/lib/python3/dist-packages" /usr/bin/python3 -c \
      'import sys, trit; print(trit.Model.load(sys.argv[1]).session().classify(sys.argv[2], 1)[0].label)' \
      "$tmp/$m.trit" "$tmp/img0.png") || got_py="(failed)"
  fi
  echo "$m: infer '$want', embed '$got', embed_c '$got_c', python '$got_py'"
  [[ -n $want && $got == "$want" && $got_c == "$want" && $got_py == "$want" ]] || status=1
done
# A bad input gives a one-line error and a non-zero exit, not a crash.
if "$tmp/embed/embed" "$tmp/missing.trit" "$tmp/img0.png" 2>"$tmp/err"; then status=1; fi
grep -q "cannot load model" "$tmp/err" || { cat "$tmp/err"; status=1; }
if "$tmp/embed_c" "$tmp/float.trit" "$tmp/missing.png" 2>"$tmp/err"; then status=1; fi
grep -q "missing.png" "$tmp/err" || status=1
exit $status
