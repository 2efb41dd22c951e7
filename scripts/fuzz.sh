#!/usr/bin/env bash
# kd's fuzz runs (docs/fuzzing.md). Builds the harnesses with clang (make
# fuzz-build: libkd and fuzz/fuzz_*.c under libFuzzer, ASan and UBSan), then:
#
#   scripts/fuzz.sh [--seconds N] [HARNESS...]   (make fuzz)
#       fuzzes each harness for N seconds (FUZZ_SECONDS, default 60) from
#       fuzz/corpus/<harness>/, merges the inputs that add coverage back into
#       it (-merge=1), and stops at the first crash, leak, time-out or
#       out-of-memory with the reproducer in fuzz/crashes/<harness>/ and the
#       command that replays it.
#   scripts/fuzz.sh --short [HARNESS...]         (make test)
#       replays each corpus and fuzzes FUZZ_SHORT_SECONDS (default 3) more,
#       merging nothing; prints one line per harness and a closing total
#       like scripts/run-tests.sh. Without clang it says so and passes.
#
# Limits for every run: -rss_limit_mb=2048, -timeout=10, -max_len per format.
set -u
cd "$(dirname "$0")/.." || exit 1
mode=long
seconds=${FUZZ_SECONDS:-60}
short_seconds=${FUZZ_SHORT_SECONDS:-3}
build=${FUZZ_BUILD:-build-fuzz}
make_cmd=${MAKE:-make}
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --short) mode=short ;;
    --seconds) seconds=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) names+=("$1") ;;
  esac
  shift
done
if [ ${#names[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.c; do n=${f#fuzz/fuzz_}; names+=("${n%.c}"); done
fi

# The largest input worth trying, per format: pipelines and stores are the
# biggest files kd's own seeds need; the exec harnesses' whole input must fit
# in a socket buffer; BEIR inputs hold three files (WordNet's four fit in
# the default); model_meta's safetensors files get what the safetensors
# harness gets; a settings line and a few texts are enough for the featuriser (texts past 2 KiB take its other path).
max_len() {
  case "$1" in
    pipeline) echo 32768 ;;
    store) echo 32768 ;;
    safetensors) echo 16384 ;;
    model_meta) echo 16384 ;;
    exec) echo 16384 ;;
    exec_text) echo 16384 ;;
    beir) echo 16384 ;;
    text) echo 8192 ;;
    *) echo 8192 ;;
  esac
}

cc=${FUZZ_CC:-clang}
# clang with libFuzzer's runtime: can it link a trivial harness?
have_libfuzzer() {
  command -v "$cc" >/dev/null 2>&1 || return 1
  local out
  out=$(mktemp "${TMPDIR:-/tmp}/kd-fuzz-probe.XXXXXX") || return 1
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' |
    "$cc" -fsanitize=fuzzer -x c - -o "$out" >/dev/null 2>&1
  local rc=$?
  rm -f "$out"
  return $rc
}
if ! have_libfuzzer; then
  if [ "$mode" = short ]; then
    echo "fuzz: skipped ($cc with libFuzzer not installed; make setup installs clang and libclang-rt-14-dev)"
    exit 0
  fi
  echo "fuzz: $cc with libFuzzer not found; run make setup (Debian: clang libclang-rt-14-dev)" >&2
  exit 1
fi
if ! $make_cmd --no-print-directory -s FUZZ_BUILD="$build" FUZZ_CC="$cc" fuzz-build >"${TMPDIR:-/tmp}/kd-fuzz-build.$$" 2>&1; then
  cat "${TMPDIR:-/tmp}/kd-fuzz-build.$$" >&2
  rm -f "${TMPDIR:-/tmp}/kd-fuzz-build.$$"
  echo "fuzz: the fuzz build failed (clang with libFuzzer: Debian's clang and libclang-rt-14-dev)" >&2
  [ "$mode" = short ] && echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
rm -f "${TMPDIR:-/tmp}/kd-fuzz-build.$$"

export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
logs="$build/logs"
mkdir -p "$logs"

# libFuzzer's last status line: "#N ... cov: C ft: F corp: K/S ... exec/s: E"
field() { sed -n "s/.* $1: \([0-9]*\).*/\1/p" "$2" | tail -n 1; }
stat_of() { sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$2" | tail -n 1; }

# The reproducer libFuzzer wrote ("Test unit written to PATH"), if any.
artifact() { sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$1" | tail -n 1; }

# Merges the run's new inputs into the corpus and keeps it small: the seeds
# (seed-*) and regression reproducers (regress-*) always stay; every other
# file is replaced by libFuzzer's minimal set (-merge=1 into an empty folder)
# of the old corpus plus the new inputs, without copies of the seeds.
merge_into_corpus() {
  local bin=$1 corpus=$2 new=$3 log=$4; shift 4
  local fresh keep f
  fresh=$(mktemp -d "${TMPDIR:-/tmp}/kd-fuzz-merge.XXXXXX")
  if ! "$bin" "$@" -merge=1 "$fresh" "$corpus" "$new" >"$log" 2>&1; then
    echo "fuzz: merging into $corpus failed (see $log)" >&2
    rm -rf "$fresh"; return
  fi
  keep=$(find "$corpus" -type f \( -name 'seed-*' -o -name 'regress-*' \) -exec sha1sum {} + | cut -d' ' -f1)
  find "$corpus" -type f ! -name 'seed-*' ! -name 'regress-*' -delete
  for f in "$fresh"/*; do
    [ -f "$f" ] || continue
    grep -qx "$(basename "$f")" <<<"$keep" || cp "$f" "$corpus/"
  done
  rm -rf "$fresh"
}

passed=0; failed=0; status=0
passed=0; failed=0; status=0
for h in "${names[@]}"; do
  bin="$build/fuzz/$h"
  corpus="fuzz/corpus/$h"
  if [ ! -x "$bin" ] || [ ! -d "$corpus" ]; then
    echo "fuzz: no harness or corpus for '$h'" >&2
    failed=$((failed + 1)); status=1; continue
  fi
  dict=()
  [ -f "fuzz/dict/$h.dict" ] && dict=("-dict=fuzz/dict/$h.dict")
  limits=(-rss_limit_mb=2048 -timeout=10 "-max_len=$(max_len "$h")" -print_final_stats=1)
  log="$logs/$h.log"
  new=$(mktemp -d "${TMPDIR:-/tmp}/kd-fuzz-$h.XXXXXX")
  n0=$(find "$corpus" -type f | wc -l)
  start=$(date +%s.%N)
  if [ "$mode" = short ]; then
    crashes=$new/crash-
    "$bin" "${limits[@]}" "${dict[@]}" -max_total_time="$short_seconds" -artifact_prefix="$new/" \
      "$new" "$corpus" >"$log" 2>&1
    rc=$?
  else
    crashes="fuzz/crashes/$h"
    mkdir -p "$crashes"
    "$bin" "${limits[@]}" "${dict[@]}" -max_total_time="$seconds" -artifact_prefix="$crashes/" \
      "$new" "$corpus" >"$log" 2>&1
    rc=$?
  fi
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
  execs=$(stat_of number_of_executed_units "$log"); execs=${execs:-0}
  eps=$(stat_of average_exec_per_sec "$log"); eps=${eps:-0}
  cov=$(field cov "$log"); cov=${cov:-?}
  ft=$(field ft "$log"); ft=${ft:-?}
  if [ "$rc" -ne 0 ]; then
    failed=$((failed + 1)); status=1
    unit=$(artifact "$log")
    if [ "$mode" = short ] && [ -n "$unit" ] && [ -f "$unit" ]; then
      mkdir -p "fuzz/crashes/$h"
      cp "$unit" "fuzz/crashes/$h/" && unit="fuzz/crashes/$h/$(basename "$unit")"
    fi
    echo "---- fuzz_$h (exit $rc) ----"
    grep -aE 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$log" | head -n 40
    printf '%-28s %4d passed, %d failed  (%ss)\n' "fuzz_$h" 0 1 "$secs"
    echo "log: $log"
    if [ -n "$unit" ]; then
      echo "reproducer: $unit"
      echo "replay: $bin ${limits[*]} $unit"
    fi
    rm -rf "$new"
    if [ "$mode" = long ]; then
      echo "fuzz: stopped at the first failure"
      exit 1
    fi
    continue
  fi
  passed=$((passed + 1))
  if [ "$mode" = short ]; then
    printf '%-28s %4d passed, %d failed  (%ss: %d inputs replayed, %s execs, cov %s)\n' \
      "fuzz_$h" 1 0 "$secs" "$n0" "$execs" "$cov"
  else
    merge_into_corpus "$bin" "$corpus" "$new" "$logs/$h.merge.log" "${limits[@]}"
    n1=$(find "$corpus" -type f | wc -l)
    printf '%-14s %6ss  %10s execs  %7s exec/s  cov %6s  ft %6s  corpus %d (+%d)\n' \
      "$h" "$secs" "$execs" "$eps" "$cov" "$ft" "$n1" $((n1 - n0))
    echo -e "$(date -u +%FT%TZ)\t$h\t$secs\t$execs\t$eps\t$cov\t$ft\t$n1" >>"$logs/figures.tsv"
  fi
  rm -rf "$new"
done
if [ "$mode" = short ]; then
  echo "fuzz: $passed passed, $failed failed"
fi
exit $status
