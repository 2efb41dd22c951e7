#!/usr/bin/python3
"""Turns the rows examples/wordnet-distill writes (TSV: model, seed, mode,
nDCG@10, MRR@10, Recall@10, Recall@100, seconds, query-tower parameters)
into the markdown tables of docs/experiments/wordnet-distill.md: mean and
sample standard deviation over the seeds, per model and mode, and the two
goals of the experiment computed from the means."""
import statistics
import sys
from collections import defaultdict

rows = defaultdict(list)
params = {}
order = []
for line in open(sys.argv[1]):
    if not line.strip() or line.startswith("#"):
        continue
    f = line.rstrip("\n").split("\t")
    key = (f[0], f[2])
    if key not in rows:
        order.append(key)
    rows[key].append([float(x) for x in f[3:8]])
    params[f[0]] = int(f[8])


def cell(vals):
    m = statistics.mean(vals)
    if len(vals) > 1:
        return "%.4f ± %.4f" % (m, statistics.stdev(vals))
    return "%.4f" % m


def mean(model, mode, col=0):
    v = rows.get((model, mode))
    return statistics.mean(r[col] for r in v) if v else None


for mode, title in (("rerank", "Re-ranking BM25's top 100 (every model sees the same candidates)"),
                    ("full", "Searching the whole corpus (dual encoders only)")):
    print("**%s**\n" % title)
    print("| model | seeds | nDCG@10 | MRR@10 | Recall@100 | train s (mean) | query-tower parameters |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key in order:
        if key[1] != mode:
            continue
        v = rows[key]
        print("| %s | %d | %s | %s | %s | %.0f | %s |" % (
            key[0], len(v), cell([r[0] for r in v]), cell([r[1] for r in v]), cell([r[3] for r in v]),
            statistics.mean(r[4] for r in v), "{:,}".format(params[key[0]]) if params[key[0]] else "-"))
    print()

gold, ce = mean("dual-gold", "rerank"), mean("cross-encoder", "rerank")
best = max((mean(m, "rerank"), m) for m in ("distill-mse", "distill-margin-mse", "distill-listwise-kl",
                                            "distill-m3se") if mean(m, "rerank") is not None)
if gold is not None and ce is not None:
    print("\nGoal 1 (re-ranking nDCG@10): gold-only %.4f, cross-encoder %.4f, best distilled (%s) %.4f: "
          "closes %.0f%% of the gap (goal: at least 50%%)." % (gold, ce, best[1], best[0],
                                                                 100 * (best[0] - gold) / (ce - gold)))
for student in sorted(m for m in params if m.startswith("embeddistill-asym")):
    for mode in ("rerank", "full"):
        t, a = mean("dual-teacher", mode), mean(student, mode)
        if t and a:
            print("\nGoal 2, %s (%s nDCG@10): %.4f / dual teacher %.4f = %.1f%% (goal: at least 95%%), "
                  "with %.3f of the teacher's query-tower parameters (goal: at most 0.1)." % (
                      student, mode, a, t, 100 * a / t, params[student] / params["dual-teacher"]))
