#!/bin/sh
# The dev-split runs that docs/experiments/wordnet-distill.md's settings were
# chosen from (seed 1; one process each, in parallel, one BLAS thread, under
# nice). Rows go to WORK-DIR/dev-*.tsv; the test split is not read.
#
#     make && make examples
#     examples/wordnet-distill/dev.sh [WORK-DIR]
#
# Same WORK-DIR as run.sh: the cross-encoder's scores and the dual teacher's
# embeddings cached here are the ones run.sh then reads (they do not depend
# on the split evaluated).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-/tmp/kd-wordnet-distill}
bin=$root/build/examples/wordnet-distill
mkdir -p "$work"
[ -d "$work/wn" ] || "$root/bin/kd" convert wordnet --out "$work/wn"
common="store=$work/store.db cache=$work split=dev seeds=1 epochs=5 ce_epochs=2 L=16"
teacher="de_E=128 de_hidden=0 de_loss=listwise_kl de_T=2 de_alpha=0.5"

dv() { # name of the rows, then options
    name=$1
    shift
    OPENBLAS_NUM_THREADS=1 nice -n 5 "$bin" "$work/wn" $common "$@" out="$work/dev-$name.tsv" \
        >"$work/dev-$name.log" 2>&1
}

# the BM25 candidates and the cross-encoder's scores first (both cached)
dv base only=dual-gold,cross-encoder
# the winning loss of the earlier runs, listwise KL: temperature and alpha
dv T1 only=distill-listwise-kl T=1 tag=-T1 &
dv T2 only=distill-listwise-kl T=2 tag=-T2 &
dv T4 only=distill-listwise-kl T=4 tag=-T4 &
dv T2a25 only=distill-listwise-kl T=2 alpha=0.25 tag=-T2-a0.25 &
# the dual-encoder teacher (E 128, no dense layer, listwise KL from the cross-encoder)
dv teacher only=dual-teacher $teacher tag=-E128-kl &
wait
# asymmetric students (about a tenth of the teacher's query tower): table size,
# width, score loss and lambda
dv A1 only=embeddistill-asym $teacher asym_buckets=15 asym_E=96 ed_loss=listwise_kl ed_T=2 lambda=1 tag=-A1 &
dv A2 only=embeddistill-asym $teacher asym_buckets=15 asym_E=96 ed_loss=m3se lambda=1 tag=-A2 &
dv A3 only=embeddistill-asym $teacher asym_buckets=16 asym_E=48 ed_loss=listwise_kl ed_T=2 lambda=1 tag=-A3 &
dv A4 only=embeddistill-asym $teacher asym_buckets=15 asym_E=96 ed_loss=listwise_kl ed_T=2 lambda=4 tag=-A4 &
wait
# second round (2026-12-02), the asymmetric student only, from A1: one
# change at a time (R), then together (S); R0 is A1 again
a1="only=embeddistill-asym $teacher asym_buckets=15 asym_E=96 ed_loss=listwise_kl ed_T=2 lambda=1"
dv R0 $a1 tag=-R0 &
dv R1 $a1 ed_epochs=10 tag=-R1 &
dv R2 $a1 ed_table_lr=0.03 tag=-R2 &
dv R3 $a1 ed_lr=0.003 tag=-R3 &
wait
dv R4 $a1 ed_alpha=0.25 tag=-R4 &
dv R5 $a1 lambda=0.25 tag=-R5 &
dv R6 $a1 ed_T=1 tag=-R6 &
dv R7 $a1 asym_buckets=14 asym_E=192 tag=-R7 &
wait
dv S1 $a1 ed_epochs=20 tag=-S1 &
dv S2 $a1 ed_epochs=10 ed_table_lr=0.03 tag=-S2 &
dv S3 $a1 ed_epochs=10 ed_alpha=0.25 tag=-S3 &
dv S4 $a1 ed_epochs=10 lambda=2 tag=-S4 &
wait
# S5 was chosen (run.sh's embeddistill-asym-tuned)
dv S5 $a1 ed_epochs=10 ed_table_lr=0.03 ed_alpha=0.25 tag=-S5 &
dv S6 $a1 ed_epochs=20 ed_table_lr=0.03 ed_alpha=0.25 tag=-S6 &
wait
cat "$work"/dev-*.tsv | grep -v '^bm25'
