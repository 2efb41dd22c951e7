#!/usr/bin/env bash
# Installs the Debian packages kd needs that are missing, and nothing else.
#   scripts/setup.sh          build, test and main-job packages
#   scripts/setup.sh --bench  also python3-torch for the benchmark peers
# protobuf-c (libprotobuf-c-dev, protobuf-c-compiler) writes ONNX from the
# onnx.proto Debian ships (libonnx-dev); python3-onnx checks the files and
# node runs them in ONNX Runtime in the tests. chromium renders kd report's
# page in the tests (scripts/report_check.py).
set -eu
pkgs="gcc make pkg-config libopenblas-dev libsqlite3-dev sqlite3 libyaml-dev
libcriterion-dev zlib1g-dev libxxhash-dev libjansson-dev dataset-fashion-mnist
clang libclang-rt-14-dev
python3-numpy python3-xxhash wordnet-base
libprotobuf-c-dev protobuf-c-compiler libonnx-dev python3-onnx
chromium libopenmpi-dev openmpi-bin"
if [ "${1:-}" = "--bench" ]; then pkgs="$pkgs python3-torch"; fi
# ONNX Runtime's tests run under node; npm installs onnxruntime-node
# (scripts/setup-onnxruntime.sh). A node from another source (NodeSource)
# brings its own npm, and Debian's npm would conflict with it.
command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"

missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "kd setup: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing >&2
