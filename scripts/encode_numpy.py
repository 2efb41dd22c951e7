#!/usr/bin/python3
"""Embeds texts with a kd dual encoder from its safetensors file alone.

Features and tower both come from the file: its metadata key "featurizer"
(kd-text-v1 settings) drives scripts/features_numpy.py, its tensors drive
scripts/dual_numpy.py. Needs numpy and python3-xxhash (Debian packages).

    scripts/encode_numpy.py MODEL.safetensors TEXTS.txt --side query|doc
                            [--out emb.npy] [--compare kd.npy --tol 1e-5]

TEXTS.txt holds one text a line (UTF-8 or any bytes; a final line break is
optional), as `kd encode --texts` reads a plain text file. With --compare it
prints the largest difference from kd's float32 embeddings (`kd encode`'s
NPY) and exits 0 when it is within --tol.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dual_numpy  # noqa: E402
import features_numpy  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("texts")
    ap.add_argument("--side", choices=["query", "doc"], default="query")
    ap.add_argument("--out")
    ap.add_argument("--compare")
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()

    tensors, meta = dual_numpy.read_safetensors(a.model)
    settings = features_numpy.parse_settings(meta["featurizer"])
    with open(a.texts, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    texts = [t[:-1] if t.endswith(b"\r") else t for t in lines]
    ids = [features_numpy.featurize(t, settings) for t in texts]
    emb = dual_numpy.embed(tensors, meta, a.side, ids)
    if a.out:
        np.save(a.out, emb.astype(np.float32))
    if not a.compare:
        return 0
    got = np.load(a.compare)
    if got.shape != emb.shape:
        sys.exit(f"encode_numpy: kd gave shape {got.shape}, numpy {emb.shape}")
    worst = float(np.abs(got.astype(np.float64) - emb).max()) if emb.size else 0.0
    print(f"encode_numpy: {len(emb)} {a.side} texts, features '{meta['featurizer']}', "
          f"max |kd - numpy| = {worst:.3g}, tolerance {a.tol:g}")
    return 0 if worst <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
