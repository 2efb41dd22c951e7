#!/usr/bin/env bash
# MPI scale-out figures (docs/scale.md), on this machine:
#   bench/dist.sh label [ROWS] [SECONDS_PER_BATCH]   labelling with bench/teacher_sleep.py
#                                                     (batches of 100) over 1, 2 and 4 ranks
#   bench/dist.sh train [EPOCHS]                      784-1024-1024-10 on 10,000 Fashion-MNIST
#                                                     images: 1 process x 2 BLAS threads
#                                                     against 2 ranks x 1 thread
# Each run starts from an empty output folder under ${KD_BENCH_DIR:-/tmp/kd-dist-bench};
# the time of a stage is read from the store (stages.finished_at - started_at).
set -eu
kd=${KD_BIN:-$(pwd)/bin/kd}
root=$(pwd)
work=${KD_BENCH_DIR:-/tmp/kd-dist-bench}
fm=/usr/share/datasets/fashion-mnist
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi="mpirun --oversubscribe"
[ "$(id -u)" -eq 0 ] && mpi="$mpi --allow-run-as-root"
mkdir -p "$work"

stage_seconds() { # store stage
  sqlite3 "$1" "select printf('%.3f', finished_at - started_at) from stages where name = '$2' order by id desc limit 1"
}

case "${1:-label}" in
label)
  rows=${2:-8000}; pause=${3:-0.05}
  cat >"$work/label.yaml" <<YAML
version: 1
output: $work/out
datasets:
  pool: {features: $fm/train-images-idx3-ubyte.gz, scale: pixels, limit: $rows}
teachers:
  slow: {kind: exec, command: [/usr/bin/python3, $root/bench/teacher_sleep.py, '$pause', '10'], batch: 100, timeout: 60}
stages:
  - label: {name: label, teacher: slow, data: pool}
YAML
  echo "labelling $rows rows, batches of 100, teacher sleeps $pause s per batch"
  base=""
  for n in 1 2 4; do
    rm -rf "$work/out"
    $mpi -np "$n" "$kd" run "$work/label.yaml" --quiet >/dev/null
    s=$(stage_seconds "$work/out/kd.db" label)
    rate=$(awk -v r="$rows" -v s="$s" 'BEGIN{printf "%.0f", r / s}')
    [ -z "$base" ] && base=$rate
    echo "ranks $n: label stage $s s, $rate answers/s, x$(awk -v a="$rate" -v b="$base" 'BEGIN{printf "%.2f", a / b}')"
  done
  ;;
train)
  epochs=${2:-3}
  cat >"$work/train.yaml" <<YAML
version: 1
output: $work/out
datasets:
  gold: {features: $fm/train-images-idx3-ubyte.gz, labels: $fm/train-labels-idx1-ubyte.gz, scale: pixels, limit: 10000}
models:
  net: {hidden: [1024, 1024]}
stages:
  - train: {name: train, model: net, data: gold, epochs: $epochs, batch: 256}
YAML
  echo "training 784-1024-1024-10 on 10,000 images, batch 256, $epochs epochs"
  rm -rf "$work/out"
  "$kd" run "$work/train.yaml" --quiet --set threads=2 >/dev/null
  s=$(stage_seconds "$work/out/kd.db" train)
  echo "1 process x 2 threads: $s s, $(awk -v e="$epochs" -v s="$s" 'BEGIN{printf "%.0f", 10000 * e / s}') examples/s"
  rm -rf "$work/out"
  $mpi -np 2 "$kd" run "$work/train.yaml" --quiet --set threads=1 >/dev/null
  s=$(stage_seconds "$work/out/kd.db" train)
  echo "2 ranks x 1 thread:    $s s, $(awk -v e="$epochs" -v s="$s" 'BEGIN{printf "%.0f", 10000 * e / s}') examples/s"
  ;;
*)
  echo "usage: bench/dist.sh label [ROWS] [SECONDS_PER_BATCH] | train [EPOCHS]" >&2
  exit 2
  ;;
esac
