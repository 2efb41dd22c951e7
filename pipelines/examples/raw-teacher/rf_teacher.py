#!/usr/bin/python3
"""A scikit-learn model as a kd exec teacher (docs/teacher-protocol.md): it
answers the class probabilities of the pickled classifier for the inputs kd
sends, which are the values of the data file as they are.

    /usr/bin/python3 pipelines/examples/raw-teacher/rf_teacher.py rf.pkl
"""
import pickle
import sys

import numpy as np

with open(sys.argv[1], "rb") as f:
    model = pickle.load(f)
inp, out = sys.stdin.buffer, sys.stdout.buffer
d = int(inp.readline().split()[3])                      # "kd-teacher 1 inputs D"
out.write(b"ready %d probabilities sklearn-%s\n" % (len(model.classes_), type(model).__name__.encode()))
out.flush()
for line in iter(inp.readline, b""):
    if line.strip() == b"end":
        break
    n = int(line.split()[1])                            # "batch N"
    x = np.frombuffer(inp.read(n * d * 4), "<f4").reshape(n, d)
    out.write(b"answer %d\n" % n)
    out.write(model.predict_proba(x).astype("<f4").tobytes())
    out.flush()
