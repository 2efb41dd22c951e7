#!/usr/bin/python3
"""An exec teacher that takes a fixed time per batch: a stand-in for a
remote model, for measuring how labelling scales over MPI ranks
(docs/scale.md) and for the dist tests.

    teacher_sleep.py SECONDS_PER_BATCH [C [linear]]

Its answer for a row x is logits[c] = x[c % D] * (c + 1); with `linear`,
logits = (x / 255) W for a fixed W (D, C) of normal draws times 0.2 (seed
0): a teacher whose answers depend on the whole image, for the active
stages' tests and benchmark (bench/dist.sh active). Every batch is
logged when it arrives, as one line "PID ROWS", to $SLEEP_TEACHER_LOG when set.
"""
import os
import sys
import time

import numpy as np

pause, C = float(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10
linear = len(sys.argv) > 3 and sys.argv[3] == "linear"
inp, out, log = sys.stdin.buffer, sys.stdout.buffer, os.environ.get("SLEEP_TEACHER_LOG")
D = int(inp.readline().split()[3])                       # "kd-teacher 1 inputs D"
out.write(b"ready %d logits sleep-teacher-v1\n" % C)
out.flush()
cols, scale = np.arange(C) % D, np.arange(1, C + 1, dtype="<f4")
W = (np.random.default_rng(0).standard_normal((D, C)) * 0.2).astype("<f4")
for line in iter(inp.readline, b""):
    if line.strip() == b"end":
        break
    n = int(line.split()[1])                             # "batch N"
    x = np.frombuffer(inp.read(n * D * 4), "<f4").reshape(n, D)
    if log:                                              # a query asked, before it is answered
        with open(log, "a") as f:
            f.write("%d %d\n" % (os.getpid(), n))
    time.sleep(pause)
    y = (x / np.float32(255)) @ W if linear else x[:, cols] * scale
    out.write(b"answer %d\n" % n + y.astype("<f4").tobytes())
    out.flush()
