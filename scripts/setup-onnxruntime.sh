#!/usr/bin/env bash
# Installs ONNX Runtime for Node.js (the onnxruntime-node npm package) into
# build/node/ when it is missing, for the ONNX export tests. --ignore-scripts:
# the package ships its CPU binaries; its install script only fetches CUDA
# ones. Never fails the caller: without node, npm or a network the ONNX
# Runtime tests skip and say why.
#   scripts/setup-onnxruntime.sh [DIR]     (default: build/node)
set -u
dir=${1:-${KD_NODE_DIR:-build/node}}
[ -d "$dir/node_modules/onnxruntime-node" ] && exit 0
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "kd setup: node or npm missing; the ONNX Runtime tests will skip (apt-get install nodejs npm)" >&2
  exit 0
fi
mkdir -p "$dir"
echo "kd setup: npm install --ignore-scripts onnxruntime-node into $dir" >&2
if ! timeout 180 npm install --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error \
    --fetch-retries=1 --fetch-timeout=30000 onnxruntime-node >&2; then
  echo "kd setup: could not install onnxruntime-node (no network to npm?); the ONNX Runtime tests will skip" >&2
fi
exit 0
