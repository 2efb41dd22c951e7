#!/usr/bin/env bash
# The noisy-teacher experiment (docs/experiments/README.md, section 2): a
# teacher trained on a small gold set labels a 50,000-image pool; students
# learn its answers unweighted and with each noise-aware method. One kd run
# per (gold size, loss, teacher, seed) trains the teacher and all students
# (pipelines/examples/noisy-teacher/pipeline.yaml).
#
#   pipelines/examples/noisy-teacher/run.sh                 # 1,000 gold, hard labels, clean teacher, 5 seeds
#   pipelines/examples/noisy-teacher/run.sh --all --jobs 2  # the full table: gold 1000 2000 5000, loss
#                                                           # hard hinton, teachers clean flip20 flip40, seeds 1-5
#   pipelines/examples/noisy-teacher/run.sh --gold "2000 5000" --loss hinton --teachers "flip20 flip40"
#   pipelines/examples/noisy-teacher/run.sh --report        # only rewrite the tables and the plot
#
# --jobs N runs up to N settings at once, each in its own store
# (runs/noisy-teacher/job-J); without it every run uses runs/noisy-teacher.
# Results are appended to docs/experiments/noisy-teacher-results.tsv (one
# row per student) and noisy-teacher-bins.tsv (the teacher's calibration
# table, one row per bin); a setting already there is not run again, so an
# interrupted experiment continues where it stopped and subsets add up.
# report.py then writes noisy-teacher.md (tables) and noisy-teacher.svg.
set -euo pipefail
cd "$(dirname "$0")/../../.."
gold="1000"
losses="hard"
teachers="clean"
seeds="1 2 3 4 5"
jobs=0
report_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --gold) gold="$2"; shift 2 ;;
    --loss) losses="$2"; shift 2 ;;
    --teachers) teachers="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --all) gold="1000 2000 5000"; losses="hard hinton"; teachers="clean flip20 flip40"; seeds="1 2 3 4 5"; shift ;;
    --jobs) jobs="$2"; shift 2 ;;
    --report) report_only=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
kd=bin/kd
here=pipelines/examples/noisy-teacher
out=runs/noisy-teacher
docs=docs/experiments
results=$docs/noisy-teacher-results.tsv
bins=$docs/noisy-teacher-bins.tsv
methods="unweighted confidence debiased slam slam-nok"
[ -x $kd ] || make -s
mkdir -p $out
[ -f $results ] || printf 'gold\tloss\tteacher\tseed\tmethod\taccuracy\tteacher_accuracy\tmean_weight\tseconds\n' > $results
[ -f $bins ] || printf 'gold\tloss\tteacher\tseed\tbin\tlo\thi\tcount\taccuracy\tk\n' > $bins
# one_run OUT G LOSS TEACHER SEED: one kd run in the store OUT, its rows
# appended to the two files (under a lock: jobs append at once)
one_run() {
    local out=$1 g=$2 loss=$3 t=$4 seed=$5
    local i sets=(--set seed=$seed --set splits.0.parts.gold=$g --set stages.6.evaluate.teacher=$t)
    for i in 1 2 3 4 5; do
      sets+=(--set stages.$i.distill.teacher=$t --set stages.$i.distill.loss=$loss)
    done
    if [ "$out" != runs/noisy-teacher ]; then
      # the store and the flipped teachers' network in this job's folder
      sets+=(--set output=$out --set teachers.flip20.command.2=$out/models/teacher-net.safetensors
             --set teachers.flip40.command.2=$out/models/teacher-net.safetensors)
    fi
    mkdir -p $out
    local t0=$(date +%s.%N) before run secs ta line acc mw m rows=$out/rows.tsv binrows=$out/bins.tsv
    before=$(sqlite3 $out/kd.db "SELECT coalesce(max(id), 0) FROM runs" 2>/dev/null || echo 0)
    # The run's status in the store says whether it finished (kd run's exit
    # status is not relied on).
    $kd run $here/pipeline.yaml --quiet "${sets[@]}" > $out/last.log 2>&1 || true
    secs=$(awk -v a=$t0 -v b=$(date +%s.%N) 'BEGIN {print b - a}')
    run=$(sqlite3 $out/kd.db "SELECT max(id) FROM runs")
    if [ "$run" = "$before" ] || [ "$(sqlite3 $out/kd.db "SELECT status FROM runs WHERE id = $run")" != ok ]; then
      cat $out/last.log; return 1
    fi
    q() { sqlite3 $out/kd.db "SELECT value FROM metrics WHERE run_id=$run AND name='$1' ORDER BY step DESC LIMIT 1"; }
    ta=$(q "teacher/$t/accuracy")
    line="$g $loss $t seed $seed: teacher $ta"
    : > $rows
    for m in $methods; do
      acc=$(q "$m/accuracy")
      mw=$(sqlite3 $out/kd.db "SELECT coalesce(avg(value), 1) FROM metrics m JOIN stages s ON s.id = m.stage_id
            WHERE m.run_id=$run AND s.name='distill-$m' AND m.name='mean_noise_weight'
            AND m.step = (SELECT max(step) FROM metrics WHERE stage_id = s.id AND name='mean_noise_weight')")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\n' $g $loss $t $seed $m $acc $ta $mw $secs >> $rows
      line="$line, $m $acc"
    done
    sqlite3 -separator $'\t' $out/kd.db "SELECT $g, '$loss', '$t', $seed, lo.step, lo.value, hi.value, c.value, a.value, k.value
        FROM metrics lo JOIN stages s ON s.id = lo.stage_id
        JOIN metrics hi ON hi.stage_id = s.id AND hi.step = lo.step AND hi.name = 'calibration_hi'
        JOIN metrics c ON c.stage_id = s.id AND c.step = lo.step AND c.name = 'calibration_count'
        JOIN metrics a ON a.stage_id = s.id AND a.step = lo.step AND a.name = 'calibration_accuracy'
        JOIN metrics k ON k.stage_id = s.id AND k.step = lo.step AND k.name = 'calibration_k'
        WHERE lo.run_id = $run AND s.name = 'distill-confidence' AND lo.name = 'calibration_lo' ORDER BY lo.step" > $binrows
    flock runs/noisy-teacher/append.lock sh -c "cat $rows >> $results && cat $binrows >> $bins"
    printf '%s (%.0f s)\n' "$line" $secs
}

if [ $report_only = 0 ]; then
  # the settings not in the results yet, "gold loss teacher seed", seed by
  # seed: stopped early, every setting has the same seeds
  todo=()
  for seed in $seeds; do
   for g in $gold; do
    for loss in $losses; do
     for t in $teachers; do
      awk -F'\t' -v g=$g -v l=$loss -v t=$t -v r=$seed '$1==g && $2==l && $3==t && $4==r {f=1} END {exit !f}' \
        $results || todo+=("$g $loss $t $seed")
     done
    done
   done
  done
  echo "${#todo[@]} kd runs to do"
  if [ "$jobs" -le 1 ]; then
    for x in "${todo[@]}"; do one_run $out $x || exit 1; done
  else
    # job J takes settings J, J + N, J + 2N, ...; a failed run stops its job
    pids=()
    for ((j = 0; j < jobs; j++)); do
      ( for ((i = j; i < ${#todo[@]}; i += jobs)); do one_run $out/job-$j ${todo[i]} || exit 1; done ) &
      pids+=($!)
    done
    failed=0
    for p in "${pids[@]}"; do wait $p || failed=1; done
    [ $failed = 0 ] || exit 1
  fi
fi
/usr/bin/python3 $here/report.py $results $bins $docs/noisy-teacher.md $docs/noisy-teacher.svg
