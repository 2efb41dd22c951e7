#!/usr/bin/python3
"""Reconstruction error of saved kd autoencoders on images none of them
trained on (the experiment's 5,000 validation images), by an independent
numpy forward pass of the safetensors file: encoder and decoder layers with
ReLU between them, the output clamped to the file's lo/hi.

    ae_mse.py VALIDATION.npy AUTOENCODER.safetensors ...
"""
import json
import struct
import sys

import numpy as np


def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head, base, t = json.loads(b[8:8 + n]), 8 + n, {}
    for k, v in head.items():
        if k != "__metadata__":
            s, e = v["data_offsets"]
            t[k] = np.frombuffer(b[base + s:base + e], dtype=np.float32).reshape(v["shape"])
    return t


def mlp(t, prefix, x):
    i = 0
    while "%s.layers.%d.weight" % (prefix, i) in t:
        x = x @ t["%s.layers.%d.weight" % (prefix, i)].T + t["%s.layers.%d.bias" % (prefix, i)]
        if "%s.layers.%d.weight" % (prefix, i + 1) in t:
            x = np.maximum(x, 0.0)
        i += 1
    return x


x = np.load(sys.argv[1]).astype(np.float32) / 255.0
print("validation images: %d, per-feature variance %.5f" % (len(x), x.var(0).mean()))
for path in sys.argv[2:]:
    t = load(path)
    r = np.clip(mlp(t, "decoder", mlp(t, "encoder", x)), t["lo"], t["hi"])
    print("%s: reconstruction MSE per feature %.5f" % (path, ((r - x) ** 2).mean()))
