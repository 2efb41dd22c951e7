#!/usr/bin/env bash
# kd's main job until the pipeline runner lands: train and evaluate MLPs on
# the whole of Fashion-MNIST (60,000 training, 10,000 test images), save them
# as safetensors, and check the saved weights against an independent numpy
# implementation.
set -eu
cd "$(dirname "$0")/.."
kd=bin/kd
out=${KD_RUN_DIR:-runs/fashion-mnist}
mkdir -p "$out"
fm=/usr/share/datasets/fashion-mnist

echo "== 784-256-10, ReLU, Adam 1e-3, batch 256, 10 epochs"
$kd train --hidden 256 --epochs 10 --batch 256 --lr 1e-3 --seed 1 --out "$out/mlp-256.safetensors"
echo
echo "== 784-1024-1024-10, ReLU, dropout 0.2, Adam 1e-3, batch 256, 10 epochs"
$kd train --hidden 1024-1024 --dropout 0.2 --epochs 10 --batch 256 --lr 1e-3 --seed 1 \
  --out "$out/mlp-1024-1024.safetensors"
echo
echo "== the saved weights in numpy (float64) against kd predict, 100 test images"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  KD_BIN=$kd /usr/bin/python3 scripts/crosscheck_numpy.py "$out/mlp-256.safetensors" \
    "$fm/t10k-images-idx3-ubyte.gz" --n 100
else
  echo "numpy is not installed (apt-get install python3-numpy): cross-check skipped"
fi
echo
echo "outputs: $out/"
