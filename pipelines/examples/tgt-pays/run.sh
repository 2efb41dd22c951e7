#!/usr/bin/env bash
# The TGT experiment (docs/experiments/tgt-pays.md): a student whose own pool
# P is small (100, 300, 1,000, 3,000 balanced images; 1,000 long-tailed), a strong
# teacher, and an autoencoder trained on 50,000 unlabelled images U. At equal
# teacher queries (5 |P|) and equal training steps it compares
#   kd-pool            KD on P alone (|P| queries)
#   augment            KD on P plus 4 |P| teacher-labelled shifted, noisy copies
#   tgt-random         TGT, random latent moves, autoencoder trained on U
#   tgt-gradient       TGT, gradient ascent on the teacher-student KL, autoencoder on U
#   oracle             KD on P plus 4 |P| natural images drawn from U
#   ablation-random    tgt-random with the autoencoder trained on P only
#   ablation-gradient  tgt-gradient with the autoencoder trained on P only
#   tgt-random-big     tgt-random with a larger autoencoder on U (784-512-64, 10 epochs), sigma as
#                      chosen for tgt-random (not in the default methods: --methods tgt-random-big)
# The exploration step (sigma, step size) and the augmentation's noise and
# shift are tuned on seed 1 by the accuracy on the 5,000 validation images; every seed
# then runs with the chosen value. Writes runs/tgt-pays/results.tsv and
# tuning.tsv (one line per run; an interrupted experiment continues where it
# stopped), then the table and the plot in docs/experiments/. The tuning runs
# of every pool come first, then the other runs pool by pool.
#
# --jobs N runs up to N kd runs at once (default 1), each in a store of its
# own (runs/tgt-pays/POOL-jK, K the job's slot); a run's line is appended
# under a lock (flock), whole. The run that trains the autoencoder on U (and
# the larger one) runs alone: the runs after it load the saved file.
#
#   pipelines/examples/tgt-pays/run.sh                              # everything
#   pipelines/examples/tgt-pays/run.sh --seeds "1 2" --pools "100 300" --methods "kd-pool tgt-random"
#   pipelines/examples/tgt-pays/run.sh --jobs 2                     # two runs at once
set -euo pipefail
cd "$(dirname "$0")/../../.."
seeds="1 2 3 4 5"
pools="100 300 1000 lt1000 3000"
methods="kd-pool augment tgt-random tgt-gradient oracle ablation-random ablation-gradient"
sigmas="0.1 0.25 0.5 1 2"
step_sizes="0.05 0.1 0.25 0.5 1 2"
augments="0/1 0/2 0.02/1 0.02/2 0.05/1 0.05/2 0.1/1 0.1/2"   # noise/shift
jobs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --pools) pools="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    --sigmas) sigmas="$2"; shift 2 ;;
    --step-sizes) step_sizes="$2"; shift 2 ;;
    --augments) augments="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --jobs takes a positive whole number, not '$jobs'" >&2; exit 2; }
kd=bin/kd
here=pipelines/examples/tgt-pays
out=runs/tgt-pays
data=$out/data
results=$out/results.tsv
tuning=$out/tuning.tsv
[ -x $kd ] || make -s
mkdir -p $out
if [ ! -f runs/label-efficiency-teacher/models/teacher.safetensors ]; then
  echo "== training the strong teacher (pipelines/examples/label-efficiency/teacher.yaml)"
  $kd run pipelines/examples/label-efficiency/teacher.yaml --quiet
fi
/usr/bin/python3 $here/prepare.py $data $seeds > /dev/null
header='method\tpool\tseed\tparameter\tvalidation\taccuracy\tlabelled\tseconds\n'
[ -f $results ] || printf "$header" > $results
[ -f $tuning ] || printf "$header" > $tuning
ae=$PWD/$out/autoencoder-unlabelled.safetensors
ae_big=$PWD/$out/autoencoder-unlabelled-big.safetensors

pool_size() { case "$1" in lt*) echo "${1#lt}" ;; *) echo "$1" ;; esac; }

# append LINE FILE: one whole line, under a lock (runs in parallel append to the same file)
append() { { flock 9; printf '%s\n' "$1" >> "$2"; } 9> "$2.lock"; }

# done_already FILE METHOD POOL SEED PARAMETER: FILE holds that run's line
done_already() {
  [ "$1" != /dev/null ] && awk -F'\t' -v m="$2" -v p="$3" -v s="$4" -v x="$5" \
    '$1==m && $2==p && $3==s && $4==x {f=1} END {exit !f}' "$1"
}

# run FILE METHOD POOL SEED PARAMETER: one kd run, one line appended to FILE
run() {
  local file=$1 method=$2 pool=$3 seed=$4 param=$5
  shift 5   # the rest: more kd options
  if done_already "$file" "$method" "$pool" "$seed" "$param"; then
    return
  fi
  local n=$(pool_size "$pool") q select ae_src dir=$out/$pool
  [[ $method != *-big ]] || dir=$out/$pool-big   # its own store: it may run beside the others
  dir=$dir${slot:+-j$slot}                         # with --jobs: the slot's own store
  q=$((5 * n))
  # the autoencoder on U: trained by the first TGT run (tgt.data), loaded by the others
  if [ -f "$ae" ]; then ae_src="autoencoder: $ae"; else ae_src="data: unlabelled"; fi
  # the ablation's autoencoder on P takes as many Adam steps as the one on U (10 epochs of 50,000 in batches of 256)
  local ab_epochs=$(( (1960 + (n + 255) / 256 - 1) / ((n + 255) / 256) ))
  local sets=(--set seed=$seed --set output=$dir --set datasets.pool.features=../../../$data/pool-$pool-s$seed.npy
              --set datasets.oracle.features=../../../$data/oracle-$pool-s$seed.npy)
  case "$method" in
    kd-pool) select="{strategy: random, budget: $n, rounds: 5, epochs: 50}" ;;
    augment) select="{strategy: augment, budget: $q, rounds: 5, augment: {share: 0.8, noise: ${param%/*}, shift: ${param#*/}}}" ;;
    tgt-random) select="{strategy: tgt, budget: $q, rounds: 5, tgt: {mode: random, share: 0.8, sigma: $param, $ae_src}}" ;;
    tgt-gradient) select="{strategy: tgt, budget: $q, rounds: 5, tgt: {mode: gradient, share: 0.8, step_size: $param, $ae_src}}" ;;
    oracle) select="{strategy: random, budget: $q, rounds: 5}"; sets+=(--set stages.0.distill.data=oracle) ;;
    tgt-random-big)
      if [ -f "$ae_big" ]; then ae_src="autoencoder: $ae_big"; else ae_src="data: unlabelled, hidden: 512, latent: 64, epochs: 10"; fi
      select="{strategy: tgt, budget: $q, rounds: 5, tgt: {mode: random, share: 0.8, sigma: $param, $ae_src}}" ;;
    ablation-random) select="{strategy: tgt, budget: $q, rounds: 5, tgt: {mode: random, share: 0.8, sigma: $param, data: pool, epochs: $ab_epochs}}" ;;
    ablation-gradient) select="{strategy: tgt, budget: $q, rounds: 5, tgt: {mode: gradient, share: 0.8, step_size: $param, data: pool, epochs: $ab_epochs}}" ;;
    *) echo "run.sh: unknown method '$method'" >&2; exit 2 ;;
  esac
  sets+=(--set "stages.0.distill.select=$select" "$@")
  local t0=$(date +%s.%N)
  KD_THREADS=${KD_THREADS:-1} nice -n 5 $kd run $here/pipeline.yaml --quiet "${sets[@]}" > $dir.log 2>&1 \
    || { cat $dir.log; exit 1; }
  local t1=$(date +%s.%N) db=$dir/kd.db run val acc labelled
  [ "$file" != /dev/null ] || return 0
  run=$(sqlite3 $db "SELECT max(id) FROM runs")
  acc=$(sqlite3 $db "SELECT value FROM metrics WHERE run_id=$run AND name='student/accuracy'")
  val=$(sqlite3 $db "SELECT value FROM metrics WHERE run_id=$run AND name='round_accuracy' ORDER BY step DESC LIMIT 1")
  labelled=$(sqlite3 $db "SELECT value FROM metrics WHERE run_id=$run AND name='round_examples' ORDER BY step DESC LIMIT 1")
  local secs=$(awk -v a=$t0 -v b=$t1 'BEGIN {printf "%.1f", b - a}')
  append "$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$method" "$pool" "$seed" "$param" "$val" "$acc" "$labelled" "$secs")" "$file"
  printf '%-18s pool %-6s seed %s %-5s: validation %s, test %s (%s teacher-labelled, %s s)\n' "$method" "$pool" "$seed" \
    "$param" "$val" "$acc" "$labelled" "$secs"
  if [ "$method" = tgt-random-big ] && [ ! -f "$ae_big" ] && [ -f $dir/models/active-autoencoder.safetensors ]; then
    cp $dir/models/active-autoencoder.safetensors "$ae_big.tmp" && mv "$ae_big.tmp" "$ae_big"
  elif [ ! -f "$ae" ] && [ -f $dir/models/active-autoencoder.safetensors ] && [[ $method == tgt-* ]]; then
    cp $dir/models/active-autoencoder.safetensors "$ae.tmp" && mv "$ae.tmp" "$ae"
  fi
}

# --jobs: slot_pid[K] is the process of the run in slot K
declare -A slot_pid=()
slot=

# reap: waits for one background run to end; a failed run stops the experiment
reap() {
  local pid k
  if ! wait -n -p pid; then
    echo "run.sh: a run failed; waiting for the others to end" >&2
    wait || true
    exit 1
  fi
  for k in "${!slot_pid[@]}"; do
    [ "${slot_pid[$k]}" != "$pid" ] || unset "slot_pid[$k]"
  done
}

drain() { while [ ${#slot_pid[@]} -gt 0 ]; do reap; done; }

# launch FILE METHOD POOL SEED PARAMETER [kd options]: run, in the background in a free slot with --jobs;
# a run that would train the autoencoder on U (or the larger one) runs alone, the others then load it
launch() {
  done_already "$1" "$2" "$3" "$4" "$5" && return
  if [ "$jobs" -gt 1 ]; then
    if { [[ $2 == tgt-random || $2 == tgt-gradient ]] && [ ! -f "$ae" ]; } ||
       { [ "$2" = tgt-random-big ] && [ ! -f "$ae_big" ]; }; then
      drain
      slot=1; run "$@"; slot=
      return
    fi
    while [ ${#slot_pid[@]} -ge "$jobs" ]; do reap; done
    local k=1
    while [ -n "${slot_pid[$k]:-}" ]; do k=$((k + 1)); done
    slot=$k; run "$@" & slot_pid[$k]=$!; slot=
  else
    run "$@"
  fi
}

# best PARAMETER of METHOD on POOL by validation accuracy in the tuning runs
best() {
  awk -F'\t' -v m="$1" -v p="$2" '$1==m && $2==p && $3==1 && ($5 > b || !f) {b=$5; x=$4; f=1} END {print x}' $tuning
}

has() { [[ " $methods " == *" $1 "* ]]; }

for pool in $pools; do
  # tuning: seed 1, validation accuracy only
  if has augment; then for v in $augments; do launch $tuning augment $pool 1 $v; done; fi
  if has tgt-random || has ablation-random; then
    for v in $sigmas; do launch $tuning tgt-random $pool 1 $v; done
  fi
  if has tgt-gradient || has ablation-gradient; then
    for v in $step_sizes; do launch $tuning tgt-gradient $pool 1 $v; done
  fi
done
drain   # every pool's choice is known from here on
for pool in $pools; do
  for seed in $seeds; do
    for method in $methods; do
      case "$method" in
        augment) param=$(best augment $pool) ;;
        tgt-random|ablation-random|tgt-random-big) param=$(best tgt-random $pool) ;;
        tgt-gradient|ablation-gradient) param=$(best tgt-gradient $pool) ;;
        *) param=- ;;
      esac
      if [ "$seed" = 1 ] && [[ $method == augment || $method == tgt-random || $method == tgt-gradient ]]; then
        # the tuning run of the chosen value is this run: copy its line
        awk -F'\t' -v m="$method" -v p="$pool" -v x="$param" '$1==m && $2==p && $3==1 && $4==x' $tuning |
          while IFS= read -r line; do
            awk -F'\t' -v m="$method" -v p="$pool" '$1==m && $2==p && $3==1 {f=1} END {exit !f}' $results ||
              append "$line" $results
          done
        continue
      fi
      launch $results $method $pool $seed $param
    done
  done
done
drain
# what each method shows the teacher: pool 100, seed 1, the chosen values (a picture, no results)
if [[ " $pools " == *" 100 "* ]] && [[ " $seeds " == *" 1 "* ]] && [ ! -f docs/experiments/tgt-pays-samples.png ]; then
  pics=("P=$data/pool-100-s1.npy")
  for method in augment tgt-random tgt-gradient ablation-gradient; do
    case "$method" in
      augment) param=$(best augment 100) ;;
      *-random) param=$(best tgt-random 100) ;;
      *) param=$(best tgt-gradient 100) ;;
    esac
    [ -n "$param" ] || continue
    [ -f $out/samples/$method/active-generated.npy ] ||
      run /dev/null $method 100 1 $param --set output=$out/samples/$method > /dev/null
    pics+=("$method=$out/samples/$method/active-generated.npy")
  done
  /usr/bin/python3 $here/samples.py docs/experiments/tgt-pays-samples.png "${pics[@]}"
fi
# the autoencoders on images neither trained on: the one on U, and the ablation's on the 100 images of seed 1
ab_ae=$out/samples/ablation-gradient/models/active-autoencoder.safetensors
if [ -f "$ae" ] && [ -f $ab_ae ]; then
  /usr/bin/python3 $here/ae_mse.py $data/validation-x.npy "$ae" $ab_ae $( [ -f "$ae_big" ] && echo "$ae_big")
fi
/usr/bin/python3 $here/report.py $results $tuning docs/experiments
