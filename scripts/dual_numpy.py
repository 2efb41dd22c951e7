#!/usr/bin/python3
"""Computes a kd dual encoder's embeddings with json and numpy only.

Reads the safetensors file written by kd (kd_dual_save), and embeds texts
given as hashed feature ids, one text a line, ids separated by spaces (an
empty line is a text without features: its pooled vector is zero):

    scripts/dual_numpy.py MODEL.safetensors IDS.txt --side query|doc
                          [--out emb.npy] [--compare kd.npy --tol 1e-5]

The tower is nn.EmbeddingBag(mode="mean") -> nn.Linear layers with the
activation between them (the last layer linear) -> L2 normalisation when the
metadata says normalize=1 or score=cosine. Computed in float64. With
--compare it prints the largest difference from kd's float32 embeddings (an
NPY file) and exits 0 when it is within --tol. The features themselves come
from kd's featuriser (its settings are in the metadata key "featurizer").
"""
import argparse
import json
import math
import struct
import sys

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


def activation(name, x):
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "gelu":
        return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    if name == "identity":
        return x
    sys.exit(f"dual_numpy: unknown activation {name}")


def embed(tensors, meta, side, texts):
    """Embeddings (len(texts), dim) of lists of bucket ids through one tower."""
    prefix = "query" if side == "query" or meta.get("shared") == "1" else "doc"
    table = tensors[f"{prefix}.bag.weight"].astype(np.float64)  # (buckets, E)
    x = np.zeros((len(texts), table.shape[1]))
    for i, ids in enumerate(texts):
        if ids:
            x[i] = table[np.asarray(ids, dtype=np.int64)].mean(axis=0)
    hidden = [h for h in meta.get("hidden", "").split(",") if h]
    for l in range(len(hidden)):
        w = tensors[f"{prefix}.layers.{l}.weight"].astype(np.float64)  # (out, in)
        b = tensors[f"{prefix}.layers.{l}.bias"].astype(np.float64)
        x = x @ w.T + b
        if l + 1 < len(hidden):
            x = activation(meta.get("activation", "relu"), x)
    if meta.get("normalize") == "1" or meta.get("score") == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def read_ids(path):
    with open(path) as f:
        return [[int(t) for t in line.split()] for line in f.read().split("\n")[:-1]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("ids")
    ap.add_argument("--side", choices=["query", "doc"], default="query")
    ap.add_argument("--out")
    ap.add_argument("--compare")
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()

    tensors, meta = read_safetensors(a.model)
    emb = embed(tensors, meta, a.side, read_ids(a.ids))
    if a.out:
        np.save(a.out, emb.astype(np.float32))
    if not a.compare:
        return 0
    got = np.load(a.compare)
    if got.shape != emb.shape:
        sys.exit(f"dual_numpy: kd gave shape {got.shape}, numpy {emb.shape}")
    worst = float(np.abs(got.astype(np.float64) - emb).max()) if emb.size else 0.0
    print(f"dual_numpy: {len(emb)} {a.side} texts, dim {emb.shape[1]}, hidden '{meta.get('hidden', '')}', "
          f"score {meta.get('score')}, max |kd - numpy| = {worst:.3g}, largest |value| = "
          f"{np.abs(emb).max() if emb.size else 0:.3g}, tolerance {a.tol:g}")
    return 0 if worst <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
