#!/usr/bin/env bash
# MPI scale-out figures (docs/scale.md), on this machine:
#   bench/dist.sh label [ROWS] [SECONDS_PER_BATCH]   labelling with bench/teacher_sleep.py
#                                                     (batches of 100) over 1, 2 and 4 ranks
#   bench/dist.sh train [EPOCHS]                      784-1024-1024-10 on 10,000 Fashion-MNIST
#                                                     images: 1 process x 2 BLAS threads
#                                                     against 2 ranks x 1 thread
#   bench/dist.sh active [POOL] [SECONDS_PER_BATCH] [BUDGET] [ROUNDS] [RUNS] [STRATEGY]
#                                                     an active (select: margin, or STRATEGY:
#                                                     the text after `strategy:`, e.g.
#                                                     "tgt, tgt: {epochs: 2}") stage over
#                                                     Fashion-MNIST with the linear sleeping
#                                                     teacher: 1 process, then 2 ranks, RUNS
#                                                     times; stage times, speed-up, and how
#                                                     many picks (and inputs made) differ
#                                                     between the two
# Each run starts from an empty output folder under ${KD_BENCH_DIR:-/tmp/kd-dist-bench};
# the time of a stage is read from the store (stages.finished_at - started_at).
set -eu
kd=${KD_BIN:-$(pwd)/bin/kd}
root=$(pwd)
work=${KD_BENCH_DIR:-/tmp/kd-dist-bench}
fm=/usr/share/datasets/fashion-mnist
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi="mpirun --oversubscribe --bind-to none"
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
active)
  pool=${2:-10000}; pause=${3:-0.05}; budget=${4:-4000}; rounds=${5:-4}; runs=${6:-1}; strategy=${7:-margin}
  cat >"$work/active.yaml" <<YAML
version: 1
output: $work/out
threads: 1
datasets:
  train: {features: $fm/train-images-idx3-ubyte.gz, labels: $fm/train-labels-idx1-ubyte.gz, scale: pixels, limit: $((pool + 1000))}
splits:
  - from: train
    parts: {gold: 500, validation: 500, pool: rest}
models:
  small: {hidden: [128]}
teachers:
  slow: {kind: exec, command: [/usr/bin/python3, $root/bench/teacher_sleep.py, '$pause', '10', linear], batch: 100, timeout: 60}
stages:
  - distill: {name: pick, student: small, teacher: slow, data: pool, gold: gold, validation: validation,
              epochs: 3, batch: 64, select: {strategy: $strategy, budget: $budget, rounds: $rounds}}
YAML
  echo "active: $strategy picks $budget of $pool Fashion-MNIST images in $rounds rounds, teacher sleeps $pause s per batch of 100, student 784-128-10, 3 epochs a round, 1 thread per rank"
  picks="select round || ',' || input_hash from selections order by round, input_hash"
  for run in $(seq "$runs"); do
    rm -rf "$work/out" "$work/one"
    "$kd" run "$work/active.yaml" --quiet >/dev/null
    s1=$(stage_seconds "$work/out/kd.db" pick)
    mv "$work/out" "$work/one"
    $mpi -np 2 "$kd" run "$work/active.yaml" --quiet >/dev/null
    s2=$(stage_seconds "$work/out/kd.db" pick)
    differ=$(diff <(sqlite3 "$work/one/kd.db" "$picks") <(sqlite3 "$work/out/kd.db" "$picks") | grep -c '^>' || true)
    echo "run $run: 1 process $s1 s, 2 ranks $s2 s, x$(awk -v a="$s1" -v b="$s2" 'BEGIN{printf "%.2f", a / b}'); picks that differ: $differ of $budget; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  done
  ;;
*)
  echo "usage: bench/dist.sh label [ROWS] [SECONDS_PER_BATCH] | train [EPOCHS] | active [POOL] [SECONDS_PER_BATCH] [BUDGET] [ROUNDS] [RUNS] [STRATEGY]" >&2
  exit 2
  ;;
esac
