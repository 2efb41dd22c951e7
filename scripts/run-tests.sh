#!/usr/bin/env bash
# Runs each Criterion test binary given on the command line, then prints one
# closing line with the totals. Exits non-zero when any test failed or crashed.
set -u
passed=0; failed=0; status=0
jobs=${KD_TEST_JOBS:-2}
export KD_ROOT=${KD_ROOT:-$(pwd)}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$KD_ROOT/scripts/lsan.supp:print_suppressions=0}
for bin in "$@"; do
  name=$(basename "$bin")
  log=$(mktemp)
  start=$(date +%s.%N)
  "$bin" --jobs "$jobs" --short-filename >"$log" 2>&1
  rc=$?
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
  syn=$(grep -a 'Synthesis:' "$log" | tail -n 1)
  t=$(sed -n 's/.*Tested: \([0-9]*\).*/\1/p' <<<"$syn"); t=${t:-0}
  p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$syn"); p=${p:-0}
  f=$(( t - p ))
  if [ "$rc" -ne 0 ] || [ -z "$syn" ]; then
    status=1
    [ "$f" -eq 0 ] && f=1
    echo "---- $name (exit $rc) ----"
    grep -av '^\[----\] *$' "$log" | tail -n 60
  fi
  printf '%-28s %4d passed, %d failed  (%ss)\n' "$name" "$p" "$f" "$secs"
  passed=$(( passed + p )); failed=$(( failed + f ))
  rm -f "$log"
done
echo "tests: $passed passed, $failed failed"
exit $status
