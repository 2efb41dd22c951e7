#!/usr/bin/python3
"""Turns the rows examples/wordnet-distill writes (TSV: model, seed, mode,
nDCG@10, MRR@10, Recall@10, Recall@100, seconds, query-tower parameters)
into the markdown tables of docs/experiments/wordnet-distill.md: mean and
sample standard deviation over the seeds, per model and mode, and the two
goals of the experiment computed from the means.

    table.py ROWS.tsv [PLOT.svg]

With PLOT.svg it also draws nDCG@10 per model (re-ranking and whole
corpus; each bar the mean over the seeds, a line from the lowest seed to the
highest)."""
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
distilled = [(mean(m, "rerank"), m) for m in params if m.startswith("distill-") and mean(m, "rerank") is not None]
best = max(distilled) if distilled else None
if gold is not None and ce is not None and best:
    print("\nGoal 1 (re-ranking nDCG@10): gold-only %.4f, cross-encoder %.4f, best distilled (%s) %.4f: "
          "closes %.0f%% of the gap (goal: at least 50%%)." % (gold, ce, best[1], best[0],
                                                                 100 * (best[0] - gold) / (ce - gold)))
g128, dt = mean("dual-gold-E128", "rerank"), mean("dual-teacher", "rerank")
if g128 is not None and dt is not None and ce is not None:
    print("\nGoal 1 at E 128 (re-ranking nDCG@10): gold-only E 128 %.4f, cross-encoder %.4f, the dual teacher "
          "(E 128, distilled from the cross-encoder) %.4f: closes %.0f%% of that gap." % (
              g128, ce, dt, 100 * (dt - g128) / (ce - g128)))
for student in sorted(m for m in params if m.startswith("embeddistill-asym")):
    for mode in ("rerank", "full"):
        t, a = mean("dual-teacher", mode), mean(student, mode)
        if t and a:
            print("\nGoal 2, %s (%s nDCG@10): %.4f / dual teacher %.4f = %.1f%% (goal: at least 95%%), "
                  "with %.3f of the teacher's query-tower parameters (goal: at most 0.1)." % (
                      student, mode, a, t, 100 * a / t, params[student] / params["dual-teacher"]))


if len(sys.argv) > 2:
    models = [m for m, mode in order if mode == "rerank"]
    W, T, B, L, R, row = 640, 40, 50, 190, 20, 30
    H = T + B + row * len(models)
    hi = max(max(r[0] for r in v) for v in rows.values())
    hi = (int(hi * 20) + 1) / 20.0

    def px(x):
        return L + x / hi * (W - L - R)

    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (W, H), '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="20" font-weight="bold">WordNet test split: nDCG@10, the mean over the seeds '
           '(line: lowest to highest seed)</text>']
    x = 0.0
    while x <= hi + 1e-9:
        svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (px(x), T, px(x), H - B))
        svg.append('<text x="%.1f" y="%d" text-anchor="middle">%.2f</text>' % (px(x), H - B + 16, x))
        x += 0.05
    svg.append('<text x="%d" y="%d" text-anchor="middle">nDCG@10</text>' % ((L + W - R) // 2, H - 14))
    colours = {"rerank": "#1f77b4", "full": "#ff7f0e"}
    for i, m in enumerate(models):
        y0 = T + row * i
        svg.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (L - 6, y0 + row // 2 + 4, m))
        for j, mode in enumerate(("rerank", "full")):
            v = rows.get((m, mode))
            if not v:
                continue
            vals = [r[0] for r in v]
            y = y0 + 4 + j * 11
            svg.append('<rect x="%d" y="%d" width="%.1f" height="10" fill="%s"/>'
                       % (L, y, px(statistics.mean(vals)) - L, colours[mode]))
            svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>'
                       % (px(min(vals)), y + 5, px(max(vals)), y + 5))
    for j, (mode, text) in enumerate((("rerank", "re-ranking BM25's top 100"), ("full", "whole corpus"))):
        svg.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' % (L + 200 * j, H - 10, colours[mode]))
        svg.append('<text x="%d" y="%d">%s</text>' % (L + 200 * j + 14, H - 1, text))
    svg[0] = svg[0].replace('height="%d"' % H, 'height="%d"' % (H + 4))
    svg.append("</svg>")
    open(sys.argv[2], "w").write("\n".join(svg) + "\n")

if gold is not None and ce is not None:
    gm, cm = mean("dual-gold", "rerank", 1), mean("cross-encoder", "rerank", 1)
    print("\n**Each distilled student against the gold-only dual encoder (re-ranking; means over the seeds)**\n")
    print("| model | nDCG@10 - gold | share of the nDCG@10 gap closed | MRR@10 - gold | share of the MRR@10 gap closed |")
    print("|---|---:|---:|---:|---:|")
    for v, m in sorted(distilled, reverse=True):
        mm = mean(m, "rerank", 1)
        print("| %s | %+.4f | %.0f%% | %+.4f | %.0f%% |" % (m, v - gold, 100 * (v - gold) / (ce - gold), mm - gm,
                                                           100 * (mm - gm) / (cm - gm)))
