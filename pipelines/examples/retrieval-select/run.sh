#!/usr/bin/env bash
# Query selection on WordNet (docs/experiments/retrieval-select.md): a dual
# encoder distilled from the cross-encoder's scores of a quarter of the
# training queries' BM25 lists, the queries chosen at random, by the
# student's margin between its top two candidates, or by the entropy of its
# softmax over the list, 3 seeds. Writes runs/retrieval-select/results.tsv
# (one line per run; an interrupted experiment continues where it stopped),
# then docs/experiments/retrieval-select-results.tsv, -reference.tsv,
# -table.md and .svg.
#
#   pipelines/examples/retrieval-select/run.sh
#   pipelines/examples/retrieval-select/run.sh --seeds 1 --strategies "random margin"
#
# Steps: teacher.yaml trains and exports the cross-encoder; select.yaml
# runs once per seed and strategy, all runs in one store, so a pair the
# teacher scored for one run is read by the next (the budget counts the
# queries whose lists a run uses; pairs_asked what it really asked).
set -euo pipefail
cd "$(dirname "$0")/../../.."
seeds="1 2 3"
strategies="random margin entropy"
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --strategies) strategies="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
kd=${KD:-bin/kd}
here=pipelines/examples/retrieval-select
out=runs/retrieval-select
results=$out/results.tsv
[ -x $kd ] || make -s
mkdir -p $out
if [ ! -f $out/teacher-cross.safetensors ]; then
  echo "== training the cross-encoder teacher on the gold pairs of the training split"
  nice -n 5 $kd run $here/teacher.yaml --quiet
fi
[ -f $results ] || printf 'strategy\tseed\tndcg10\tmrr10\trecall100\tqueries\tpairs_asked\tseconds\tcpu_seconds\n' > $results

one() {  # strategy seed
  local strategy=$1 seed=$2
  if awk -F'\t' -v s="$strategy" -v r="$seed" '$1==s && $2==r {f=1} END {exit !f}' $results; then
    return
  fi
  local log=$out/log-$strategy-$seed.txt run
  # wall and CPU seconds of the run (the machine is shared: wall time is mostly waiting)
  /usr/bin/time -f '%e %U %S' -o $out/time.txt nice -n 5 $kd run $here/select.yaml \
    --set seed=$seed --set stages.0.distill.select.strategy=$strategy > $log 2>&1 || { tail -20 $log; exit 1; }
  run=$(sqlite3 $out/kd.db "SELECT max(id) FROM runs")
  q() { sqlite3 $out/kd.db "SELECT value FROM metrics WHERE run_id=$run AND name='$1'"; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$strategy" "$seed" "$(q distilled/test/ndcg@10)" \
    "$(q distilled/test/mrr@10)" "$(q distilled/test/recall@100)" "$(q queries)" "$(q pairs_asked)" \
    "$(awk '{printf "%.0f\t%.0f", $1, $2 + $3}' $out/time.txt)" >> $results
  tail -1 $results
}

for seed in $seeds; do
  for strategy in $strategies; do
    one $strategy $seed
  done
done
if [ ! -f $out/reference.tsv ]; then
  echo "== references: BM25 and the teacher (re-ranking BM25's top 100) on the test split"
  nice -n 5 $kd run $here/reference.yaml > $out/log-reference.txt 2>&1 || { tail -20 $out/log-reference.txt; exit 1; }
  run=$(sqlite3 $out/kd.db "SELECT max(id) FROM runs")
  {
    printf 'ranker\tndcg10\tmrr10\trecall100\n'
    for who in bm25 teacher/ce; do
      printf '%s' "$who"
      for m in ndcg@10 mrr@10 recall@100; do
        printf '\t%s' "$(sqlite3 $out/kd.db "SELECT value FROM metrics WHERE run_id=$run AND name='$who/test/$m'")"
      done
      printf '\n'
    done
  } > $out/reference.tsv
fi
cp $results docs/experiments/retrieval-select-results.tsv
cp $out/reference.tsv docs/experiments/retrieval-select-reference.tsv
/usr/bin/python3 $here/report.py $results docs/experiments
