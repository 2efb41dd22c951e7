#!/usr/bin/env bash
# The noisy-teacher experiment (docs/experiments/noisy-teacher.md): for the
# clean 1,000-gold teacher and for the same teacher corrupted on 20% and 40%
# of its inputs, a student distilled unweighted and one with noise-aware
# weights, 3 seeds. Writes runs/noisy-teacher/results.tsv (an interrupted
# experiment continues where it stopped), then the table in docs/experiments/.
#
#   examples/noisy-teacher/run.sh                 # everything (about 4 minutes on 2 cores)
#   examples/noisy-teacher/run.sh --seeds 1 --teachers "clean corrupt40"
#   examples/noisy-teacher/run.sh --loss hard     # hard-label distillation for both students
#   examples/noisy-teacher/run.sh --reweight-temperature 4   # d(x) at the distillation temperature
# Each setting of --loss and --reweight-temperature has its own results file
# and table (hinton and 1 are the pipeline's own settings).
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds="1 2 3"
teachers="clean corrupt20 corrupt40"
loss=hinton
rwt=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --teachers) teachers="$2"; shift 2 ;;
    --loss) loss="$2"; shift 2 ;;
    --reweight-temperature) rwt="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
kd=bin/kd
here=examples/noisy-teacher
out=runs/noisy-teacher
variant=$loss-t$rwt
results=$out/results-$variant.tsv
[ -x $kd ] || make -s
mkdir -p $out
[ -f $results ] || printf 'teacher\tseed\tteacher_accuracy\tunweighted\treweighted\tmean_weight\tseconds\n' > $results
for seed in $seeds; do
  for t in $teachers; do
    if awk -F'\t' -v t="$t" -v r="$seed" '$1==t && $2==r {f=1} END {exit !f}' $results; then continue; fi
    t0=$(date +%s.%N)
    $kd run $here/pipeline.yaml --quiet --set seed=$seed --set stages.1.distill.teacher=$t \
      --set stages.2.distill.teacher=$t --set stages.3.evaluate.teacher=$t \
      --set stages.1.distill.loss=$loss --set stages.2.distill.loss=$loss \
      --set stages.2.distill.reweight.temperature=$rwt > $out/last.log 2>&1 \
      || { cat $out/last.log; exit 1; }
    t1=$(date +%s.%N)
    run=$(sqlite3 $out/kd.db "SELECT max(id) FROM runs")
    q() { sqlite3 $out/kd.db "SELECT value FROM metrics WHERE run_id=$run AND name='$1' ORDER BY step DESC LIMIT 1"; }
    ta=$(q "teacher/$t/accuracy"); un=$(q unweighted/accuracy); rw=$(q reweighted/accuracy); mw=$(q mean_noise_weight)
    secs=$(awk -v a=$t0 -v b=$t1 'BEGIN {print b - a}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%.1f\n' $t $seed $ta $un $rw $mw $secs >> $results
    printf '%-9s seed %s: teacher %s, unweighted %s, reweighted %s (mean weight %s, %.0f s)\n' $t $seed $ta $un $rw $mw $secs
  done
done
/usr/bin/python3 $here/report.py $results docs/experiments/noisy-teacher-$variant.md
