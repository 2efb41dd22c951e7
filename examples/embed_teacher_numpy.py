#!/usr/bin/python3
"""A text-embedding exec teacher for kd in a few lines of numpy: hashed bag
of words, E buckets (64 unless given), L2-normalised (docs/teacher-protocol.md,
"Pair scores and text embeddings"). Words are hashed with CRC-32, which,
unlike Python's hash(), is the same in every process.

    kd_text_teacher_spec: kind exec,
    command: [/usr/bin/python3, examples/embed_teacher_numpy.py, "64"]
"""
import re
import sys
import zlib

import numpy as np

E = int(sys.argv[1]) if len(sys.argv) > 1 else 64
inp, out = sys.stdin.buffer, sys.stdout.buffer
assert inp.readline().split()[2] == b"texts", "kd asked for another kind"   # "kd-teacher 1 texts"
out.write(b"ready %d embedding hashed-bow-%d-v1\n" % (E, E))
out.flush()
for line in iter(inp.readline, b""):
    if line.strip() == b"end":
        break
    n = int(line.split()[1])                                # "batch N"
    x = np.zeros((n, E), "<f4")
    for i in range(n):
        text = inp.read(int(inp.readline())).decode("utf-8")  # "LEN", then the bytes
        for w in re.findall(r"\w+", text.lower()):
            x[i, zlib.crc32(w.encode("utf-8")) % E] += 1
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    out.write(b"answer %d\n" % n)
    out.write(x.astype("<f4").tobytes())
    out.flush()
