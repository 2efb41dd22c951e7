#!/usr/bin/env bash
# kd's main job: the example pipeline on the whole of Fashion-MNIST
# (pipelines/examples/fashion-mnist.yaml): a teacher trained on 2,000 gold
# labels, 53,000 pool images labelled through the store, a distilled student
# against the same student trained on gold alone, evaluated on the 10,000
# test images, exported as safetensors and C. Then the exported weights are
# checked against an independent numpy implementation.
set -eu
cd "$(dirname "$0")/.."
kd=bin/kd
pipeline=pipelines/examples/fashion-mnist.yaml

$kd run "$pipeline" "$@"
echo
echo "== the exported student in numpy (float64) against kd predict, 100 test images"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  KD_BIN=$kd /usr/bin/python3 scripts/crosscheck_numpy.py runs/fashion-mnist/student.safetensors \
    /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --n 100
else
  echo "numpy is not installed (apt-get install python3-numpy): cross-check skipped"
fi
echo
echo "Run it again and every teacher answer comes from the store (0 asked);"
echo "inspect the store with: $kd store stats runs/fashion-mnist/kd.db"
