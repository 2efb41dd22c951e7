#!/usr/bin/python3
"""The noisy-teacher table from run.sh's results (standard library only).

    report.py runs/noisy-teacher/results.tsv docs/experiments/noisy-teacher-table.md
"""
import csv
import statistics
import sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = defaultdict(list)
for r in rows:
    by[r["teacher"]].append(r)


def ms(vs):
    sd = statistics.stdev(vs) if len(vs) > 1 else 0.0
    return "%.4f ± %.4f" % (statistics.mean(vs), sd)


names = {"clean": "1,000-gold teacher", "corrupt20": "same, 20% corrupted", "corrupt40": "same, 40% corrupted"}
lines = ["| teacher | seeds | teacher test accuracy | unweighted student | reweighted student | gain (points) | "
         "reweighted wins | mean weight (last epoch) |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
for t in ["clean", "corrupt20", "corrupt40"]:
    rs = by.get(t)
    if not rs:
        continue
    f = lambda k: [float(r[k]) for r in rs]
    gains = [100 * (b - a) for a, b in zip(f("unweighted"), f("reweighted"))]
    wins = sum(g > 0 for g in gains)
    lines.append("| %s | %d | %s | %s | %s | %+.2f ± %.2f | %d of %d | %.3f |" % (
        names.get(t, t), len(rs), ms(f("teacher_accuracy")), ms(f("unweighted")), ms(f("reweighted")),
        statistics.mean(gains), statistics.stdev(gains) if len(gains) > 1 else 0.0, wins, len(rs),
        statistics.mean(f("mean_weight"))))
total = sum(float(r["seconds"]) for r in rows)
lines.append("")
lines.append("%d runs, %.0f s of wall time in all." % (len(rows), total))
text = "\n".join(lines) + "\n"
open(sys.argv[2], "w").write(text)
print(text)
