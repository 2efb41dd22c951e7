#!/usr/bin/python3
"""Checks that a kd MLP gives the same logits in an independent implementation.

Reads the safetensors file with nothing but json and numpy, runs the network
in float64 on the first N images of an IDX file, asks `kd predict` for its
float32 logits on the same images, and compares them.

    scripts/crosscheck_numpy.py MODEL.safetensors IMAGES.idx[.gz] [--n 100]
                                [--kd bin/kd] [--tol 1e-5] [--rtol 2e-6]

Exit status 0 when the largest absolute difference is within --tol, or
within --rtol times the largest |logit|: kd computes in float32 (about 7
significant digits), so a network with logits near 20 differs from float64
by more than 1e-5 in absolute terms while agreeing to 6 or 7 digits.
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    dtypes = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4"}
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        tensors[name] = np.frombuffer(data[b:e], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return tensors, meta


def read_idx(path, n):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[2] != 0x08:
        sys.exit("crosscheck: only unsigned-byte IDX images are supported here")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    width = int(np.prod(dims[1:]))
    x = np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims[0], width)
    return x[:n].astype(np.float64) / 255.0


def forward(tensors, meta, x):
    act = meta.get("activation", "relu")
    n_layers = len([k for k in tensors if k.endswith(".weight")])
    for i in range(n_layers):
        w = tensors[f"layers.{i}.weight"].astype(np.float64)  # (out, in), as torch.nn.Linear
        b = tensors[f"layers.{i}.bias"].astype(np.float64)
        x = x @ w.T + b
        if i + 1 < n_layers:
            if act == "relu":
                x = np.maximum(x, 0.0)
            elif act == "tanh":
                x = np.tanh(x)
            elif act == "gelu":
                from math import erf, sqrt
                x = 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))
            elif act != "identity":
                sys.exit(f"crosscheck: unknown activation {act}")
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("images")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--kd", default=os.environ.get("KD_BIN", "bin/kd"))
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--rtol", type=float, default=2e-6)
    a = ap.parse_args()

    tensors, meta = read_safetensors(a.model)
    ref = forward(tensors, meta, read_idx(a.images, a.n))
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.npy")
        subprocess.run([a.kd, "predict", a.model, a.images, "--limit", str(a.n), "--out", out],
                       check=True, stderr=subprocess.DEVNULL)
        got = np.load(out)
    if got.shape != ref.shape:
        sys.exit(f"crosscheck: kd gave shape {got.shape}, numpy {ref.shape}")
    diff = np.abs(got.astype(np.float64) - ref)
    worst = float(diff.max())
    agree = float((got.argmax(1) == ref.argmax(1)).mean())
    scale = max(1.0, float(np.abs(ref).max()))
    print(f"crosscheck: {a.n} images, {len(tensors) // 2} layers ({meta.get('sizes', '?')}), "
          f"max |kd - numpy| = {worst:.3g} ({worst / scale:.2g} of the largest |logit|, {scale:.3g}), "
          f"argmax agreement {agree:.3f}, tolerance {a.tol:g} or {a.rtol:g} relative")
    return 0 if worst <= a.tol or worst <= a.rtol * scale else 1


if __name__ == "__main__":
    sys.exit(main())
