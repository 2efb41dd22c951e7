#!/bin/sh
# The supervision-complexity experiment in one command: the pipeline with
# seeds 1, 2 and 3 (each its own output folder and store), then the report
# (tables in Markdown and the SVG plots) into docs/experiments/.
#
#   pipelines/examples/supervision-complexity/run.sh [SEEDS...]     (from kd's root)
set -eu
cd "$(dirname "$0")/../../.."
KD=${KD:-bin/kd}
SEEDS=${*:-1 2 3}
OUT=runs/supervision-complexity
for s in $SEEDS; do
    "$KD" run pipelines/examples/supervision-complexity/pipeline.yaml --quiet \
        --set seed="$s" --set output="$OUT/seed-$s"
done
python3 pipelines/examples/supervision-complexity/report.py "$OUT" docs/experiments
