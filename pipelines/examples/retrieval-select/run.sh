#!/usr/bin/env bash
# Query selection on WordNet (docs/experiments/retrieval-select.md): a dual
# encoder distilled from the cross-encoder's scores of a quarter of the
# training queries' BM25 lists, the queries chosen at random, by the
# student's margin between its top two candidates, or by the entropy of its
# softmax over the list, 3 seeds. Writes runs/retrieval-select/results.tsv
# (one line per run; an interrupted experiment continues where it stopped),
# then docs/experiments/retrieval-select-results.tsv, -table.md and .svg.
#
#   pipelines/examples/retrieval-select/run.sh
#   pipelines/examples/retrieval-select/run.sh --seeds 1 --strategies "random margin"
#
# Steps: teacher.yaml trains and exports the cross-encoder, labels.yaml has
# it score BM25's top 100 of every training query once (into the store),
# select.yaml runs once per seed and strategy (reading those scores: the
# budget counts the queries whose lists a run uses, and nothing is asked).
set -euo pipefail
cd "$(dirname "$0")/../../.."
seeds="1 2 3"
strategies="random margin entropy"
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --strategies) strategies="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
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
if [ ! -f $out/labels.done ]; then
  echo "== the teacher scores BM25's top 100 of every training query (once, into the store)"
  nice -n 5 $kd run $here/labels.yaml --quiet && touch $out/labels.done
fi
[ -f $results ] || printf 'strategy\tseed\tndcg10\tmrr10\trecall100\tqueries\tpairs_asked\tdev_ndcg10_by_round\tseconds\n' > $results

one() {  # strategy seed
  local strategy=$1 seed=$2
  if awk -F'\t' -v s="$strategy" -v r="$seed" '$1==s && $2==r {f=1} END {exit !f}' $results; then
    return
  fi
  local t0 t1 run q
  t0=$(date +%s.%N)
  nice -n 5 $kd run $here/select.yaml --quiet --set seed=$seed --set stages.0.distill.select.strategy=$strategy \
    > $out/last.log 2>&1 || { cat $out/last.log; exit 1; }
  t1=$(date +%s.%N)
  run=$(sqlite3 $out/kd.db "SELECT max(id) FROM runs")
  q() { sqlite3 $out/kd.db "SELECT value FROM metrics WHERE run_id=$run AND name='$1'"; }
  local dev
  dev=$(sqlite3 $out/kd.db "SELECT group_concat(printf('%.4f', value), ',') FROM (SELECT value FROM metrics
        WHERE run_id=$run AND name='round_ndcg@10' ORDER BY step)")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\n' "$strategy" "$seed" "$(q distilled/test/ndcg@10)" \
    "$(q distilled/test/mrr@10)" "$(q distilled/test/recall@100)" "$(q queries)" "$(q pairs_asked)" "$dev" \
    "$(awk -v a=$t0 -v b=$t1 'BEGIN {print b - a}')" >> $results
  tail -1 $results
}

for seed in $seeds; do
  for strategy in $strategies; do
    one $strategy $seed
  done
done
cp $results docs/experiments/retrieval-select-results.tsv
/usr/bin/python3 $here/report.py $results docs/experiments
