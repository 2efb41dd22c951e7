#!/usr/bin/env bash
# The label-efficiency experiment (docs/experiments/README.md, section 1):
# every selection strategy plus TGT, at teacher-query budgets of 1,000 to
# 20,000 from a 50,000-image pool, 3 seeds, and full-pool distillation as
# the ceiling. Writes runs/label-efficiency/results.tsv (one line per run;
# an interrupted experiment continues where it stopped), then the table and
# the plot in docs/experiments/.
#
#   pipelines/examples/label-efficiency/run.sh                      # everything (about 1.5 hours on 2 shared cores)
#   pipelines/examples/label-efficiency/run.sh --budgets 50000 --strategies random   # random over the whole pool
#   pipelines/examples/label-efficiency/run.sh --seeds 1 --budgets 1000 --strategies "random margin"
set -euo pipefail
cd "$(dirname "$0")/../../.."
seeds="1 2 3"
budgets="1000 2000 5000 10000 20000"
strategies="random entropy margin least-confidence iwes iwes-two rad tgt"
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --budgets) budgets="$2"; shift 2 ;;
    --strategies) strategies="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
kd=bin/kd
here=pipelines/examples/label-efficiency
out=runs/label-efficiency
results=$out/results.tsv
[ -x $kd ] || make -s
mkdir -p $out
teacher=runs/label-efficiency-teacher/models/teacher.safetensors
if [ ! -f $teacher ]; then
  echo "== training the strong teacher on all 60,000 training images"
  $kd run $here/teacher.yaml --quiet
fi
[ -f $results ] || printf 'strategy\tbudget\tseed\taccuracy\tqueries\tseconds\n' > $results
ae=$PWD/$out/autoencoder.safetensors

one() {  # strategy budget seed [extra --set ...]
  local strategy=$1 budget=$2 seed=$3; shift 3
  if awk -F'\t' -v s="$strategy" -v b="$budget" -v r="$seed" '$1==s && $2==b && $3==r {f=1} END {exit !f}' $results; then
    return
  fi
  local sets=(--set seed=$seed --set stages.0.distill.select.budget=$budget)
  if [ "$strategy" = ceiling ]; then
    sets+=(--set stages.0.distill.select.strategy=random --set stages.0.distill.select.rounds=1
           --set stages.0.distill.select.epochs=20)
  elif [ "$strategy" = tgt ]; then
    sets+=(--set stages.0.distill.select.strategy=tgt)
    if [ -f "$ae" ]; then
      sets+=(--set "stages.0.distill.select.tgt={mode: gradient, autoencoder: $ae}")
    else
      sets+=(--set "stages.0.distill.select.tgt={mode: gradient}")
    fi
  else
    sets+=(--set stages.0.distill.select.strategy=$strategy)
  fi
  local t0=$(date +%s.%N)
  $kd run $here/pipeline.yaml --quiet "${sets[@]}" "$@" > $out/last.log 2>&1 || { cat $out/last.log; exit 1; }
  local t1=$(date +%s.%N)
  local run acc queries
  run=$(sqlite3 $out/kd.db "SELECT max(id) FROM runs")
  acc=$(sqlite3 $out/kd.db "SELECT value FROM metrics WHERE run_id=$run AND name='student/accuracy'")
  queries=$(sqlite3 $out/kd.db "SELECT coalesce(sum(value), 0) FROM metrics WHERE run_id=$run AND name='round_queries' AND step=(SELECT max(step) FROM metrics WHERE run_id=$run AND name='round_queries')")
  # round_queries is cumulative: its last round is the run's spend (0 once the store has the answers)
  printf '%s\t%s\t%s\t%s\t%s\t%.1f\n' "$strategy" "$budget" "$seed" "$acc" "$queries" "$(awk -v a=$t0 -v b=$t1 'BEGIN {print b - a}')" >> $results
  printf '%-16s budget %5s seed %s: accuracy %s (%s new queries, %.0f s)\n' "$strategy" "$budget" "$seed" "$acc" \
    "$queries" "$(awk -v a=$t0 -v b=$t1 'BEGIN {print b - a}')"
  if [ "$strategy" = tgt ] && [ ! -f "$ae" ] && [ -f $out/models/active-autoencoder.safetensors ]; then
    cp $out/models/active-autoencoder.safetensors "$ae"   # trained once, reused by the other TGT runs
  fi
}

for seed in $seeds; do
  one ceiling 50000 $seed
  for budget in $budgets; do
    for strategy in $strategies; do
      one $strategy $budget $seed
    done
  done
done
/usr/bin/python3 $here/report.py $results docs/experiments
