#!/usr/bin/python3
"""A picture of what each method feeds the teacher: one row of 12 images per
NPY file (the first rows of a pool, or of an active stage's generated inputs),
scaled from [0, 255] or [0, 1] to grey levels, written as one PNG.

    samples.py OUT.png LABEL=FILE.npy ...

Standard library and numpy only; run.sh calls it after the runs.
"""
import struct
import sys
import zlib

import numpy as np


def png(path, img):
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    out, items = sys.argv[1], sys.argv[2:]
    n, pad, scale = 12, 2, 2
    rows = []
    for item in items:
        label, path = item.split("=", 1)
        x = np.load(path).astype(np.float32)
        x = x / 255.0 if x.max() > 1.5 else x
        row = np.ones((28 + 2 * pad, n * (28 + pad) + pad), dtype=np.float32)
        for i in range(min(n, len(x))):
            row[pad:pad + 28, pad + i * (28 + pad):pad + i * (28 + pad) + 28] = 1.0 - x[i].reshape(28, 28)
        rows.append(row)
        print("row %d: %s (%s, %d images)" % (len(rows), label, path, len(x)))
    img = np.vstack(rows)
    img = np.kron(img, np.ones((scale, scale), dtype=np.float32))
    png(out, (np.clip(img, 0, 1) * 255).astype(np.uint8))


if __name__ == "__main__":
    main()
