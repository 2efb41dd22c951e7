#!/usr/bin/env bash
# Runs every benchmark binary built under $1/bench (default build/bench).
set -u
dir=${1:-build}/bench
status=0
for b in "$dir"/*; do
  [ -x "$b" ] || continue
  echo "==== $(basename "$b")"
  "$b" || status=1
done
exit $status
