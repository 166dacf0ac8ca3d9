#!/usr/bin/env bash
# Reproduces the quantization table of the README: the real ResNet-50 converted to int8, int4
# and ternary (N = 4 and 64, both cluster shapes, round to nearest and error compensation),
# calibrated on the first 50 photos of ../shared/data/imagenet-sample and scored on the other
# 450, with ternary N=4 mixed with int4 under a budget (--min-replaced); then the CIFAR-10
# ResNet-8 in int8, ternary N=4 and mixed on its 1000 photos.
# Models go to models/table/ (kept between runs); the tables to stdout and models/table/*.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=$root/../shared/data
[[ -d $data ]] || { echo "quantization_table: ../shared/data is absent" >&2; exit 1; }
"$root/scripts/build.sh" >/dev/null
"$root/scripts/fetch_resnet50.sh" >/dev/null
bin=$root/build/bin
out=$root/models/table
mkdir -p "$out"

convert() {  # NAME ARGS...
  local name=$1
  shift
  [[ -s $out/$name.trit ]] && return 0
  echo "converting $name" >&2
  "$bin/trit-convert" "$root/models/resnet50.onnx" -o "$out/$name.trit" --preset keras-resnet50 \
    --labels "$root/models/resnet50.labels.txt" --report "$out/$name.json" "$@" 2>"$out/$name.log"
}
calib=(--calib "$data/imagenet-sample" --calib-count 50)
convert float32
convert int8 --weights int8 "${calib[@]}"
convert int4-n4 --weights int4 --cluster 4 "${calib[@]}"
for n in 4 64; do
  for shape in kernels channels; do
    convert "ternary-n$n-$shape-rtn" --weights ternary --cluster $n --cluster-shape $shape --method rtn --no-bias-correction "${calib[@]}"
    convert "ternary-n$n-$shape-gptq" --weights ternary --cluster $n --cluster-shape $shape "${calib[@]}"
  done
done
convert ternary-n4-kernels-min70 --weights ternary --cluster 4 --min-replaced 0.7 "${calib[@]}"
convert ternary-n4-channels-min65 --weights ternary --cluster 4 --cluster-shape channels --min-replaced 0.65 "${calib[@]}"
models=()
for name in float32 int8 int4-n4 ternary-n4-kernels-rtn ternary-n4-kernels-gptq ternary-n4-channels-rtn \
  ternary-n4-channels-gptq ternary-n64-kernels-rtn ternary-n64-kernels-gptq ternary-n64-channels-rtn \
  ternary-n64-channels-gptq ternary-n4-kernels-min70 ternary-n4-channels-min65; do
  models+=(-m "$out/$name.trit")
done
eval=$root/scripts/eval_imagenet.py
/usr/bin/python3 "$eval" "${models[@]}" --data "$data/imagenet-sample" --skip 50 --json "$out/resnet50.eval.json" | tee "$out/resnet50.md"
# int8 again with dynamic exponents: each activation's exponent chosen at run time from itself.
/usr/bin/python3 "$eval" -m "$out/float32.trit" -m "$out/int8.trit" --dynamic-exponents --data "$data/imagenet-sample" --skip 50 \
  | tee "$out/resnet50-dynamic.md"
# The share of multiplications replaced, from each conversion report.
/usr/bin/python3 - "$out"/*.json <<'PY' | tee -a "$out/resnet50.md"
import json, os, sys
for path in sys.argv[1:]:
    report = json.load(open(path))
    if "multiplications_replaced" not in report:  # evaluation results, not conversion reports
        continue
    name = os.path.basename(path)[:-5]
    print(f"{name}: {100 * report['multiplications_replaced']:.1f} % of multiplications replaced")
PY

# ResNet-8: calibrate on 5 photos per class (numbers 0090-0094), score all 1000.
cal=$out/cifar-calib
mkdir -p "$cal"
for d in "$data"/resnet8-cifar10/cifar10-test-1000/*/; do
  c=$(basename "$d")
  for f in 0090 0091 0092 0093 0094; do ln -sf "$d/$f.jpg" "$cal/${c}_$f.jpg"; done
done
r8=$data/resnet8-cifar10/resnet8.onnx
[[ -s $out/r8-float32.trit ]] || "$bin/trit-convert" "$r8" -o "$out/r8-float32.trit" --preset raw 2>/dev/null
[[ -s $out/r8-int8.trit ]] || "$bin/trit-convert" "$r8" -o "$out/r8-int8.trit" --preset raw --weights int8 --calib "$cal" 2>/dev/null
[[ -s $out/r8-ternary-n4.trit ]] || "$bin/trit-convert" "$r8" -o "$out/r8-ternary-n4.trit" --preset raw --weights ternary --cluster 4 --calib "$cal" 2>/dev/null
[[ -s $out/r8-ternary-n4-channels.trit ]] || "$bin/trit-convert" "$r8" -o "$out/r8-ternary-n4-channels.trit" --preset raw --weights ternary --cluster 4 --cluster-shape channels --calib "$cal" 2>/dev/null
[[ -s $out/r8-ternary-n4-min70.trit ]] || "$bin/trit-convert" "$r8" -o "$out/r8-ternary-n4-min70.trit" --preset raw --weights ternary --cluster 4 --min-replaced 0.7 --calib "$cal" 2>/dev/null
"$bin/trit-eval" -m "$out/r8-float32.trit" -m "$out/r8-int8.trit" -m "$out/r8-ternary-n4.trit" -m "$out/r8-ternary-n4-channels.trit" \
  -m "$out/r8-ternary-n4-min70.trit" --data "$data/resnet8-cifar10/cifar10-test-1000" --json "$out/resnet8.eval.json"
/usr/bin/python3 -c 'import json, sys; sys.path.insert(0, sys.argv[1]); import eval_imagenet as e; print(e.table(json.load(open(sys.argv[2]))))' \
  "$root/scripts" "$out/resnet8.eval.json" | tee "$out/resnet8.md"
