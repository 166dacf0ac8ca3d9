#!/usr/bin/env bash
# Installs every system package trit needs, from Debian's archive. Does nothing when they are
# all there already. Needs root (or sudo) only when something is missing.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libflatbuffers-dev flatbuffers-compiler   # the model format (FlatBuffers 2.0.8)
  libtbb-dev libfmt-dev libcli11-dev libstb-dev doctest-dev
  libonnx-dev libprotobuf-dev protobuf-compiler   # trit-convert
  libopenblas-dev liblapacke-dev            # trit-convert's quantizer (Gram matrices, Cholesky)
  python3-numpy python3-onnx python3-pil    # scripts and test data (Debian's /usr/bin/python3)
  python3-matplotlib python3-scipy          # plots; the ImageNet devkit's meta.mat
  pybind11-dev python3-pytest python3-tqdm  # the Python module (python/), its tests, its progress bars
  python3-distributed                       # eval_imagenet.py --dask (Dask distributed)
)
# scripts/fuzz.sh also needs clang (libFuzzer); it says so when clang is missing.
# scripts/fetch_resnet50.sh needs an npm client; any will do (Debian's, or one that came with Node).
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
