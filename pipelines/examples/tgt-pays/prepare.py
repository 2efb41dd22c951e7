#!/usr/bin/python3
"""The data of the TGT experiment (docs/experiments/tgt-pays.md), as NPY files.

The 60,000 Fashion-MNIST training images are cut once, with a fixed shuffle:
  validation   5,000 labelled images (tuning the exploration step; never trained on)
  unlabelled  50,000 images U without labels (the autoencoder's data; the oracle's extras)
  candidates   5,000 images the student's pools are drawn from
Per seed s, from the candidates: balanced pools of 100, 300, 1,000 and 3,000
images (nested: 10, 30, 100, 300 per class) and a long-tailed pool of 1,000 (class sizes
falling geometrically by a factor of 10 from the head class to the tail
class, the class order shuffled per seed); and for each pool P the oracle's
pool: P plus 4 |P| images drawn from U.

  prepare.py OUT_DIR SEED...
"""
import gzip
import os
import sys

import numpy as np

SRC = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def save(out, name, arr):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        np.save(path + ".tmp.npy", arr)
        os.replace(path + ".tmp.npy", path)


def long_tail_sizes(total, classes, ratio, rng):
    raw = ratio ** (-np.arange(classes) / (classes - 1))
    n = np.floor(raw / raw.sum() * total).astype(int)
    n[0] += total - n.sum()
    order = rng.permutation(classes)
    sizes = np.zeros(classes, dtype=int)
    sizes[order] = n   # class order[k] gets the k-th largest size
    return sizes


def main():
    out, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
    os.makedirs(out, exist_ok=True)
    x = idx(f"{SRC}/train-images-idx3-ubyte.gz").reshape(60000, 784)
    y = idx(f"{SRC}/train-labels-idx1-ubyte.gz").astype(np.int32)
    perm = np.random.default_rng(2026).permutation(60000)
    val, unl, cand = perm[:5000], perm[5000:55000], perm[55000:]
    save(out, "validation-x.npy", x[val])
    save(out, "validation-y.npy", y[val])
    save(out, "unlabelled.npy", x[unl])
    for s in seeds:
        rng = np.random.default_rng(1000 + s)
        by_class = [rng.permutation(cand[y[cand] == c]) for c in range(10)]
        pools = {}
        for n in (100, 300, 1000, 3000):
            pools[str(n)] = np.concatenate([b[: n // 10] for b in by_class])
        sizes = long_tail_sizes(1000, 10, 10.0, rng)
        pools["lt1000"] = np.concatenate([b[:k] for b, k in zip(by_class, sizes)])
        for name, p in pools.items():
            p = rng.permutation(p)
            extra = rng.choice(unl, size=4 * len(p), replace=False)
            save(out, f"pool-{name}-s{s}.npy", x[p])
            save(out, f"pool-{name}-s{s}-y.npy", y[p])   # for the record: no stage reads the pool's labels
            save(out, f"oracle-{name}-s{s}.npy", x[np.concatenate([p, extra])])
            if name == "lt1000":
                print(f"seed {s}: long-tailed class sizes {np.bincount(y[p], minlength=10).tolist()}")


if __name__ == "__main__":
    main()
