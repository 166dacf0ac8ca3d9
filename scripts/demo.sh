#!/usr/bin/env bash
# The main job on the real model: fetch the ImageNet ResNet-50, convert it with trit-convert
# (float32, int8 and ternary), and classify real photos with infer. Photos come from
# ../shared/data/photos when present, else from Debian's python3-skimage package (a cat and a
# cup of coffee). The preprocessing (BGR, mean, resize) comes from the ONNX file's metadata.
# A second run reuses every model and takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
"$root/scripts/fetch_resnet50.sh"
model=$root/models/resnet50.trit
if [[ ! -s $model || $root/models/resnet50.onnx -nt $model ]]; then
  "$root/build/bin/trit-convert" "$root/models/resnet50.onnx" -o "$model" --force \
    --labels "$root/models/resnet50.labels.txt"
fi
photos=()
if [[ -d $root/../shared/data/photos ]]; then
  for f in parrot.jpg hot_dog.jpg cat.bmp bird.bmp owl.jpg grace_hopper.bmp; do
    photos+=("$root/../shared/data/photos/$f")
  done
else
  skimage=$root/models/skimage
  if [[ ! -s $skimage/chelsea.png ]]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download python3-skimage >/dev/null && dpkg -x python3-skimage_*.deb x)
    mkdir -p "$skimage"
    cp "$tmp"/x/usr/lib/python3/dist-packages/skimage/data/{chelsea,coffee}.png "$skimage/"
    rm -rf "$tmp"
  fi
  photos=("$skimage/chelsea.png" "$skimage/coffee.png")
fi
echo
echo "== float32 ResNet-50 =="
"$root/build/bin/infer" --model "$model" --top 3 "${photos[@]}"

# The same photos through the integer pipeline: 8-bit weights, and ternary weights in clusters of
# 4 input channels at one tap; 8-bit activations. Calibrated on 50 ImageNet photos when
# ../shared/data has them; otherwise on 32 images trit-convert makes from the model's own
# batch-norm statistics (no photo needed: about 10 minutes, once; kept in models/synthetic/).
calib=$root/../shared/data/imagenet-sample
synthetic=$root/models/synthetic
if [[ -d $calib ]]; then
  from=(--calib "$calib" --calib-count 50)
  source="50 ImageNet photos"
else
  from=(--calib "$synthetic" --calib-count 32)
  source="32 synthetic images (made from the model's batch-norm statistics; no photo)"
  if (($(find "$synthetic" -name 'synthetic-*.png' 2>/dev/null | wc -l) < 32)); then
    echo
    echo "== making 32 calibration images from ResNet-50's batch-norm statistics (no ../shared/data) =="
    rm -rf "$synthetic.tmp"
    "$root/build/bin/trit-convert" "$root/models/resnet50.onnx" -o "$root/models/resnet50-int8.trit" --force \
      --labels "$root/models/resnet50.labels.txt" --weights int8 --calib synthetic --calib-count 32 \
      --report "$root/models/resnet50-int8.report.json" --synthetic-save "$synthetic.tmp"
    rm -rf "$synthetic"
    mv "$synthetic.tmp" "$synthetic"
  fi
fi
convert() {  # OUTPUT, then trit-convert's weight options
  local out=$1
  shift
  if [[ ! -s $out || $model -nt $out || ! -s ${out%.trit}.report.json ]]; then
    echo
    echo "== converting $(basename "$out"), calibrated on $source =="
    "$root/build/bin/trit-convert" "$root/models/resnet50.onnx" -o "$out" --force \
      --labels "$root/models/resnet50.labels.txt" "${from[@]}" --report "${out%.trit}.report.json" "$@"
  fi
}
int8=$root/models/resnet50-int8.trit
ternary=$root/models/resnet50-ternary-n4.trit
convert "$int8" --weights int8
convert "$ternary" --weights ternary --cluster 4 --cluster-shape channels
echo
echo "== float32, int8 and ternary ResNet-50 side by side (integers only in the last two; calibrated on $source) =="
/usr/bin/python3 "$root/scripts/demo_table.py" "$root/build/bin/infer" --model float32 "$model" --model int8 "$int8" \
  --model "ternary N=4" "$ternary" "${photos[@]}"
