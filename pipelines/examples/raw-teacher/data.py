#!/usr/bin/python3
"""The data and the teacher of the raw-teacher example (run.sh): scikit-learn's
digits (1,797 images of 8x8 pixels valued 0 to 16, shipped with
scikit-learn) split with seed 0 into 500 test rows and 1,297 training rows,
written as CSV with a `label` column, and a random forest of 100 trees
trained on the raw training pixels, pickled for rf_teacher.py.

    /usr/bin/python3 pipelines/examples/raw-teacher/data.py OUT_DIR
"""
import pickle
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

out = sys.argv[1]
d = load_digits()
idx = np.random.default_rng(0).permutation(len(d.target))
test, train = idx[:500], idx[500:]


def write(name, rows):
    with open("%s/%s" % (out, name), "w") as f:
        f.write(",".join("p%d" % j for j in range(64)) + ",label\n")
        for i in rows:
            f.write(",".join("%g" % v for v in d.data[i]) + ",%d\n" % d.target[i])


write("train.csv", train)
write("test.csv", test)
rf = RandomForestClassifier(n_estimators=100, random_state=0).fit(d.data[train], d.target[train])
print("raw-teacher: random forest, test accuracy on the raw pixels %.4f" % rf.score(d.data[test], d.target[test]))
with open("%s/rf.pkl" % out, "wb") as f:
    pickle.dump(rf, f)
