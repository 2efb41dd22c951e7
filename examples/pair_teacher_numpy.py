#!/usr/bin/python3
"""A pair-scoring exec teacher for kd in a few lines of numpy: the score of
a (query, document) pair is the cosine similarity of their word sets
(docs/teacher-protocol.md, "Pair scores and text embeddings").

    kd_pair_teacher_spec: kind exec,
    command: [/usr/bin/python3, examples/pair_teacher_numpy.py]

A real cross-encoder replaces `overlap` with a model reading both texts.
"""
import re
import sys

import numpy as np

inp, out = sys.stdin.buffer, sys.stdout.buffer
assert inp.readline().split()[2] == b"pairs", "kd asked for another kind"   # "kd-teacher 1 pairs"
out.write(b"ready 1 score word-overlap-v1\n")
out.flush()


def words(b):
    return set(re.findall(r"\w+", b.decode("utf-8").lower()))


def overlap(q, d):
    return len(q & d) / np.sqrt(len(q) * len(d)) if q and d else 0.0


for line in iter(inp.readline, b""):
    if line.strip() == b"end":
        break
    n = int(line.split()[1])                                # "batch N"
    s = np.zeros(n, "<f4")
    for i in range(n):
        ql, dl = map(int, inp.readline().split())           # "QLEN DLEN", then the bytes
        s[i] = overlap(words(inp.read(ql)), words(inp.read(dl)))
    out.write(b"answer %d\n" % n)
    out.write(s.tobytes())
    out.flush()
