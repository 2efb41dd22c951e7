#!/usr/bin/python3
"""An exec teacher for kd in a few lines of numpy: serves an MLP saved by kd
(safetensors) over kd's teacher protocol (docs/teacher-protocol.md).

    teachers:
      remote:
        kind: exec
        command: [/usr/bin/python3, examples/teacher_numpy.py, runs/teacher.safetensors]

kd sends the inputs as they are in the data file (docs/teacher-protocol.md);
the network is applied after the input scaling it records in its metadata
(`input_scale`: pixels divides by 255, standard computes
(x - input_mean) * input_inv_std), as kd does.

With `--corrupt F` it is a teacher that is wrong on purpose on a fraction F
of its inputs (pipelines/examples/noisy-teacher): for an input whose hash falls under F,
a class other than its top one, chosen by the hash, gets the top logit + 1,
so the true top class becomes the second choice. With `--flip F` the
mistake is a uniform random label flip instead: on a fraction F of inputs
the top class swaps its logit with another class drawn uniformly (by the
hash), so the answer moves to any wrong class with equal probability. Either
choice depends on the input alone, so the same input always gets the same
answer.
"""
import hashlib
import json
import struct
import sys

import numpy as np

path = sys.argv[1]
corrupt = float(sys.argv[sys.argv.index("--corrupt") + 1]) if "--corrupt" in sys.argv else 0.0
flip = float(sys.argv[sys.argv.index("--flip") + 1]) if "--flip" in sys.argv else 0.0
raw = open(path, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
meta = header.pop("__metadata__", {})
weights = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "<f4")
           .reshape(v["shape"]) for k, v in header.items()}
layers = [(weights[f"layers.{i}.weight"], weights[f"layers.{i}.bias"]) for i in range(len(weights) // 2)]
assert meta.get("activation", "relu") == "relu", "this example serves ReLU networks"
scale = meta.get("input_scale", "none")
if scale == "standard":
    mean = np.array(meta["input_mean"].split(","), dtype="<f4")
    inv_std = np.array(meta["input_inv_std"].split(","), dtype="<f4")

inp, out = sys.stdin.buffer, sys.stdout.buffer
d = int(inp.readline().split()[3])                      # "kd-teacher 1 inputs D"
assert d == layers[0][0].shape[1], f"kd sends {d} features, the network takes {layers[0][0].shape[1]}"
version = hashlib.sha256(raw).hexdigest()[:16]          # changes whenever the weights change
if corrupt:
    version += "-corrupt-%g" % corrupt
if flip:
    version += "-flip-%g" % flip
out.write(b"ready %d logits numpy-mlp-%s\n" % (layers[-1][0].shape[0], version.encode()))
out.flush()
for line in iter(inp.readline, b""):
    if line.strip() == b"end":
        break
    rows = int(line.split()[1])                         # "batch N"
    h = h_in = np.frombuffer(inp.read(rows * d * 4), "<f4").reshape(rows, d)
    if scale == "pixels":                               # the model's own scaling, in float32
        h = h_in / np.float32(255)
    elif scale == "standard":
        h = (h_in - mean) * inv_std
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i + 1 < len(layers):
            h = np.maximum(h, 0)
    for r in range(rows) if corrupt else ():
        u = int.from_bytes(hashlib.blake2b(h_in[r].tobytes(), digest_size=8).digest(), "little")
        if u < corrupt * 2.0**64:
            top = int(np.argmax(h[r]))
            k = (top + 1 + (u >> 8) % (h.shape[1] - 1)) % h.shape[1]
            h[r, k] = h[r, top] + 1.0
    for r in range(rows) if flip else ():
        u = int.from_bytes(hashlib.blake2b(h_in[r].tobytes(), digest_size=8, person=b"kd-flip").digest(), "little")
        if u < flip * 2.0**64:
            top = int(np.argmax(h[r]))
            k = (top + 1 + (u >> 8) % (h.shape[1] - 1)) % h.shape[1]
            h[r, top], h[r, k] = h[r, k], h[r, top]
    out.write(b"answer %d\n" % rows)
    out.write(h.astype("<f4").tobytes())
    out.flush()
