#!/usr/bin/env bash
# trit-convert and infer as a user runs them: outputs, JSON, exit codes, one-line errors, and
# no file replaced unasked. Usage: cli_test.sh BIN_DIR SOURCE_DIR. Exit 77: skipped.
set -u
bin=$1
src=$2
data=$src/../shared/data
if [[ ! -d $data ]]; then
  echo "skipped: ../shared/data is absent"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
pass() { echo "ok: $1"; }
bad() { echo "FAILED: $1"; failures=$((failures + 1)); }
expect() {  # expect NAME CONDITION...
  local name=$1
  shift
  if "$@"; then pass "$name"; else bad "$name"; fi
}
one_line() { [[ $(wc -l <"$1") -eq 1 ]]; }

r8=$data/resnet8-cifar10
printf '%s\n' airplane automobile bird cat deer dog frog horse ship truck >"$tmp/cifar.labels"
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/r8.trit" --preset raw --labels "$tmp/cifar.labels" 2>"$tmp/err"
expect "trit-convert converts ResNet-8" test $? -eq 0 -a -s "$tmp/r8.trit"

cp "$tmp/r8.trit" "$tmp/before"
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/r8.trit" --preset raw 2>"$tmp/err"
expect "trit-convert refuses to replace a file" test $? -ne 0
expect "  ...with one line naming it" grep -q "r8.trit': the file exists" "$tmp/err"
expect "  ...and leaves it as it was" cmp -s "$tmp/r8.trit" "$tmp/before"
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/r8.trit" --preset raw --labels "$tmp/cifar.labels" --force 2>/dev/null
expect "trit-convert --force replaces it" test $? -eq 0

"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/syn.trit" --preset raw --weights int8 --calib synthetic 2>"$tmp/err"
expect "--calib synthetic on a model with its batch norms folded away fails, writes nothing" test $? -ne 0 -a ! -e "$tmp/syn.trit"
expect "  ...with one line saying why" grep -q "^trit-convert: cannot make synthetic calibration images: the model has no batch normalization" "$tmp/err"
expect "  ...and no other error line" test "$(grep -c '^trit-convert: ' "$tmp/err")" -eq 1
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/syn.trit" --preset raw --weights int8 --calib synthetic --calib-count 0 2>"$tmp/err"
expect "--calib synthetic --calib-count 0 fails, writes nothing" test $? -ne 0 -a ! -e "$tmp/syn.trit"
expect "  ...with one line asking for a count" grep -q "^trit-convert: --calib synthetic needs --calib-count N" "$tmp/err"
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/syn.trit" --preset raw --weights int8 --calib "$r8/cifar10-test-1000/cat" \
  --synthetic-save "$tmp/syn" 2>"$tmp/err"
expect "--synthetic-save without --calib synthetic fails, writes nothing" test $? -ne 0 -a ! -e "$tmp/syn.trit" -a ! -e "$tmp/syn"
expect "  ...with one line saying so" grep -q "^trit-convert: --synthetic-save needs --calib synthetic" "$tmp/err"
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/nopre.trit" 2>"$tmp/err"
expect "a model with no preprocessing anywhere converts" test $? -eq 0
expect "  ...with a warning naming the defaults" grep -q "^warning: .*resnet8.onnx' says nothing of its preprocessing.*mean 0, scale 1" "$tmp/err"
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/pre.trit" --preset raw 2>"$tmp/err"
expect "  ...and none when a preset gives it" test "$(grep -c '^warning' "$tmp/err")" -eq 0

"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/mixed.trit" --preset raw --weights int8 --min-replaced 0.5 \
  --calib "$r8/cifar10-test-1000/cat" --calib-count 2 2>"$tmp/err"
expect "trit-convert --min-replaced with int8 weights fails" test $? -ne 0 -a ! -e "$tmp/mixed.trit"
expect "  ...with one line saying it needs ternary" grep -q "^trit-convert: --min-replaced needs ternary weights" "$tmp/err"
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/mixed.trit" --preset raw --min-replaced 0.5 2>"$tmp/err"
expect "  ...and with float weights too" grep -q "^trit-convert: --min-replaced needs ternary weights" "$tmp/err"

# Calibration streams: ten times the photos, no more memory than a bounded sample's worth.
find "$r8/cifar10-test-1000" -name '*.jpg' | sort >"$tmp/all1000.txt"
head -n 100 "$tmp/all1000.txt" >"$tmp/all100.txt"
peak() { grep -o "peak memory [0-9]* MB" "$1" | grep -o "[0-9]*"; }
for n in 100 1000; do
  "$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/c$n.trit" --preset raw --weights ternary --calib-list "$tmp/all$n.txt" \
    --calib-count 0 2>"$tmp/c$n.err"
done
p100=$(peak "$tmp/c100.err")
p1000=$(peak "$tmp/c1000.err")
echo "peak memory calibrating on 100 photos: $p100 MB; on 1000: $p1000 MB"
if [[ ${TRIT_SANITIZE:-} == *address* ]]; then
  echo "not compared: AddressSanitizer's quarantine keeps freed memory, so its peak grows with the work done"
else
  expect "calibrating on 10x the photos raises the peak memory by less than 40 MB" test -n "$p1000" -a $((p1000 - p100)) -lt 40
fi

# --reconstruct's bad options: one line each, and no file.
cal=(--calib-list "$tmp/all100.txt" --calib-count 0)
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/rec.trit" --preset raw --reconstruct 2>"$tmp/err"
expect "--reconstruct with float weights fails, writes nothing" test $? -ne 0 -a ! -e "$tmp/rec.trit"
expect "  ...with one line saying why" grep -q "^trit-convert: --reconstruct needs ternary or int4 weights" "$tmp/err"
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/rec.trit" --preset raw --weights int8 "${cal[@]}" --reconstruct 2>"$tmp/err"
expect "--reconstruct with int8 weights (no layer to reconstruct) fails, writes nothing" test $? -ne 0 -a ! -e "$tmp/rec.trit"
expect "  ...with one line saying why" grep -q "^trit-convert: --reconstruct needs ternary or int4 weights: int8" "$tmp/err"
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/rec.trit" --preset raw --weights ternary "${cal[@]}" --reconstruct \
  --reconstruct-iters 0 2>"$tmp/err"
expect "--reconstruct-iters 0 fails, writes nothing" test $? -ne 0 -a ! -e "$tmp/rec.trit"
expect "  ...with one error line" test "$(grep -c '^trit-convert: ' "$tmp/err")" -eq 1
"$bin/trit-convert" "$r8/resnet8.onnx" -o "$tmp/rec.trit" --preset raw --weights ternary --calib-list "$tmp/all100.txt" \
  --calib-count 3 --reconstruct 2>"$tmp/err"
expect "--reconstruct on fewer photos than a batch fails, writes nothing" test $? -ne 0 -a ! -e "$tmp/rec.trit"
expect "  ...with one line saying so" grep -q "^trit-convert: cannot reconstruct on 3 calibration images" "$tmp/err"

echo "not a model" >"$tmp/junk.onnx"
"$bin/trit-convert" "$tmp/junk.onnx" -o "$tmp/junk.trit" 2>"$tmp/err"
expect "trit-convert fails on junk" test $? -ne 0
expect "  ...with one error line" test "$(grep -c '^trit-convert: ' "$tmp/err")" -eq 1
expect "  ...and writes nothing" test ! -e "$tmp/junk.trit"

img=$r8/cifar10-test-1000/airplane/0001.jpg  # 0000.jpg is a ship to this model
"$bin/infer" --model "$tmp/r8.trit" --top 3 "$img" >"$tmp/out" 2>"$tmp/err"
expect "infer classifies a CIFAR photo" test $? -eq 0
expect "  ...as an airplane" grep -q "1\..*airplane" "$tmp/out"

"$bin/infer" --model "$tmp/r8.trit" --json --top 2 "$img" "$tmp/missing.jpg" "$tmp" "$img" >"$tmp/out" 2>"$tmp/err"
expect "infer exits non-zero when an image fails" test $? -ne 0
expect "  ...prints the good images" test "$(wc -l <"$tmp/out")" -eq 2
expect "  ...one error line per bad image" test "$(wc -l <"$tmp/err")" -eq 2
expect "  ...naming the file and the reason" grep -q "missing.jpg': No such file or directory" "$tmp/err"
expect "  ...JSON lines with the documented fields" /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert set(o) == {"image", "ms", "top"} and o["ms"] > 0 and len(o["top"]) == 2, o
    assert set(o["top"][0]) == {"class", "wnid", "label", "prob"}, o
    assert o["top"][0]["label"] == "airplane" and 0 < o["top"][0]["prob"] <= 1, o
' "$tmp/out"

"$bin/infer" --model "$tmp/junk.onnx" "$img" >"$tmp/out" 2>"$tmp/err"
expect "infer refuses a file that is not a model" test $? -ne 0
expect "  ...with one line" one_line "$tmp/err"
expect "  ...naming it" grep -q "cannot load model '$tmp/junk.onnx'" "$tmp/err"

if ((failures)); then
  echo "$failures checks failed"
  exit 1
fi
echo "all checks passed"
