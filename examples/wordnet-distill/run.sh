#!/bin/sh
# Reproduces docs/experiments/wordnet-distill.md's tables and plot: every
# model of the experiment on the WordNet test split, seeds 1, 2 and 3 (one
# process per seed, in parallel, one BLAS thread each, under nice).
#
#     make && make examples
#     examples/wordnet-distill/run.sh [--quick] [--seeds 'S...'] [--out DIR] [WORK-DIR]
#
# WORK-DIR (default /tmp/kd-wordnet-distill, with --quick
# /tmp/kd-wordnet-distill-quick) holds the BEIR directory made by
# `kd convert wordnet`, the BM25 store and its candidate cache, the
# cross-encoder's scores and the dual teacher's embeddings (cache=), and the
# logs. The settings below were chosen on the dev split
# (examples/wordnet-distill/dev.sh, docs/experiments/wordnet-distill.md).
# Writes wordnet-distill-results.tsv (the raw rows), wordnet-distill-table.md
# and wordnet-distill.svg into DIR: by default docs/experiments/, with
# --quick WORK-DIR/table/.
#
# --quick checks the whole script in minutes instead of hours: every model
# and row of the full run, but 1 epoch (the cross-encoder's too; the tuned
# asymmetric student keeps its 10, a few seconds) on the
# first 2,000 training queries, evaluated on the first 500 test queries.
# Its figures say that the script works, nothing about the methods; it
# never writes into docs/experiments/ unless --out says so. --seeds '1'
# runs those seeds only (default '1 2 3').
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
usage="usage: run.sh [--quick] [--seeds 'S...'] [--out DIR] [WORK-DIR]"
quick=0 out= seeds="1 2 3" work=
# options before or after WORK-DIR: a --out after it must not be taken for
# nothing and leave the default, docs/experiments/, to be overwritten
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --out)
        [ $# -ge 2 ] || { echo "run.sh: --out needs a directory ($usage)" >&2; exit 2; }
        out=$2
        shift ;;
    --seeds)
        [ $# -ge 2 ] || { echo "run.sh: --seeds needs a list, e.g. '1 2 3' ($usage)" >&2; exit 2; }
        seeds=$2
        shift ;;
    -*) echo "run.sh: unknown option '$1' ($usage)" >&2; exit 2 ;;
    *)
        [ -z "$work" ] || { echo "run.sh: one WORK-DIR only, got '$work' and '$1' ($usage)" >&2; exit 2; }
        work=$1 ;;
    esac
    shift
done
if [ $quick = 1 ]; then
    work=${work:-/tmp/kd-wordnet-distill-quick}
    out=${out:-$work/table}
    # 1 epoch (embeddistill-asym-tuned keeps its 10), 2,000 training and
    # 500 test queries
    size="epochs=1 ce_epochs=1 train_queries=2000 eval_queries=500"
else
    work=${work:-/tmp/kd-wordnet-distill}
    out=${out:-$root/docs/experiments}
    # 5 epochs for students and teachers, the cross-encoder trained 2 epochs
    size="epochs=5 ce_epochs=2"
fi
bin=$root/build/examples/wordnet-distill
[ -x "$bin" ] || { echo "run.sh: $bin is missing: run make examples first" >&2; exit 1; }
mkdir -p "$work" "$out"
[ -d "$work/wn" ] || "$root/bin/kd" convert wordnet --out "$work/wn"

# settings shared by every run: the sizes above, the cross-encoder's lists
# of 32 (its default), distillation lists of 16
common="store=$work/store.db cache=$work split=test $size L=16"
# the dual-encoder teacher (chosen on dev): E 128, no dense layer, distilled
# from the cross-encoder with the listwise KL
teacher="de_E=128 de_hidden=0 de_loss=listwise_kl de_T=2 de_alpha=0.5"
# the distillation settings of the winning loss, chosen on dev
tuned="T=2 alpha=0.25"
# the symmetric EmbedDistill student (fixed before the runs, not tuned):
# the listwise KL at T 2 on the dual teacher's scores, lambda_q = lambda_d = 1
sym="ed_loss=listwise_kl ed_T=2 lambda=1"
# the asymmetric student (chosen on dev): its own 2^15-row table, E 96,
# a dense layer 96 -> 128
asym="asym_buckets=15 asym_E=96 ed_loss=listwise_kl ed_T=2 lambda=1"
# the same student at the second dev round's choice (dev.sh, S5): 10 epochs,
# its table's Adam rate 0.03, alpha 0.25
asym_tuned="ed_epochs=10 ed_table_lr=0.03 ed_alpha=0.25"

run() { # seed, name of the log, then options
    s=$1 name=$2
    shift 2
    OPENBLAS_NUM_THREADS=1 nice -n 5 "$bin" "$work/wn" $common seeds=$s "$@" out="$work/rows-$s.tsv" \
        >"$work/$name-$s.log" 2>&1
}

seed() {
    s=$1
    rm -f "$work/rows-$s.tsv"
    # the cross-encoder (trained, evaluated, its scores of the lists cached) and the gold dual
    run $s base only=dual-gold,cross-encoder
    # the four losses at the settings fixed before any run (alpha 0.5, T 1)
    run $s losses only=distill-mse,distill-margin-mse,distill-listwise-kl,distill-m3se
    # the winner at its dev-chosen settings
    run $s tuned only=distill-listwise-kl $tuned tag=-tuned
    # the gold-only dual encoder at the dual teacher's width (E 128): the
    # teacher is itself distilled from the cross-encoder, and this is its control
    run $s gold128 only=dual-gold E=128 tag=-E128
    # the dual teacher (its embeddings cached), then EmbedDistill from it
    run $s sym only=dual-teacher,embeddistill-sym $teacher $sym
    run $s asym only=embeddistill-asym $teacher $asym
    run $s asym-tuned only=embeddistill-asym $teacher $asym $asym_tuned tag=-tuned
}

# the BM25 index and every query's candidates, once, before the seeds run
# in parallel (they all read this store and its candidate cache)
run 0 candidates only=bm25
rm -f "$work/rows-0.tsv"
pids=
for s in $seeds; do
    seed $s &
    pids="$pids $!"
done
# a seed that failed stops at its first failing run (set -e); say so
# instead of tabling the rows that are there
failed=0
for p in $pids; do
    wait $p || failed=1
done
if [ $failed = 1 ]; then
    echo "run.sh: a seed failed; its last log in $work says why:" >&2
    grep -l 'wordnet-distill:' "$work"/*.log >&2 || true
    exit 1
fi
{
    echo "# examples/wordnet-distill rows: model	seed	mode	ndcg@10	mrr@10	recall@10	recall@100	seconds	query_tower_params"
    first=${seeds%% *}
    grep -m1 '^bm25' "$work/rows-$first.tsv"
    for s in $seeds; do
        grep -v '^bm25' "$work/rows-$s.tsv" || true
    done
} >"$out/wordnet-distill-results.tsv"
/usr/bin/python3 "$here/table.py" "$out/wordnet-distill-results.tsv" "$out/wordnet-distill.svg" \
    >"$out/wordnet-distill-table.md"
cat "$out/wordnet-distill-table.md"
