#!/usr/bin/env bash
# The raw-teacher example (docs/teacher-protocol.md, "What the inputs are"):
# a random forest trained on raw pixel values, served over the exec
# protocol, teaches an MLP student in a pipeline whose data are scaled
# (standard, then none). Needs scikit-learn (apt-get install python3-sklearn);
# run from anywhere:
#
#   pipelines/examples/raw-teacher/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
if ! /usr/bin/python3 -c 'import sklearn' 2>/dev/null; then
  echo "run.sh: this example needs scikit-learn: apt-get install python3-sklearn" >&2
  exit 1
fi
out=runs/raw-teacher
mkdir -p "$out"
/usr/bin/python3 pipelines/examples/raw-teacher/data.py "$out"
for scale in standard none; do
  echo "== scale: $scale"
  bin/kd run pipelines/examples/raw-teacher/pipeline.yaml --set output="$out/scale-$scale" \
    --set datasets.train.scale=$scale --set datasets.test.scale=$scale
done
