#!/usr/bin/env bash
# The main job on the real model: fetch the ImageNet ResNet-50, convert it with trit-convert,
# and classify real photos with infer. Photos come from ../shared/data/photos when present,
# else from Debian's python3-skimage package (a cat and a cup of coffee).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
"$root/scripts/fetch_resnet50.sh"
model=$root/models/resnet50.trit
if [[ ! -s $model || $root/models/resnet50.onnx -nt $model ]]; then
  "$root/build/bin/trit-convert" "$root/models/resnet50.onnx" -o "$model" --force \
    --preset keras-resnet50 --labels "$root/models/resnet50.labels.txt"
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

# The same photos through the integer pipeline: ternary weights in clusters of 4 input channels
# at one tap, 8-bit activations, calibrated on 50 ImageNet photos (about a minute, once).
calib=$root/../shared/data/imagenet-sample
ternary=$root/models/resnet50-ternary-n4.trit
if [[ -d $calib ]]; then
  if [[ ! -s $ternary || $model -nt $ternary ]]; then
    "$root/build/bin/trit-convert" "$root/models/resnet50.onnx" -o "$ternary" --force \
      --preset keras-resnet50 --labels "$root/models/resnet50.labels.txt" \
      --weights ternary --cluster 4 --cluster-shape channels --calib "$calib" --calib-count 50
  fi
  echo
  echo "== ternary ResNet-50, integers only =="
  "$root/build/bin/infer" --model "$ternary" --top 3 "${photos[@]}"
else
  echo "(no ../shared/data/imagenet-sample to calibrate with: the ternary model is skipped)"
fi
