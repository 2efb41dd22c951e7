#!/usr/bin/python3
"""The table and the plot of the retrieval query-selection experiment
(run.sh writes the results).

    report.py runs/retrieval-select/results.tsv docs/experiments

Writes retrieval-select-table.md (test nDCG@10, MRR@10, Recall@100 per
strategy: every seed, the mean and the sample standard deviation; the
difference to random per seed) and retrieval-select.svg (test nDCG@10 per
seed and strategy; dev nDCG@10 after each round, mean over seeds).
Standard library only.
"""
import csv
import statistics
import sys
from collections import defaultdict

results, outdir = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(results), delimiter="\t"))
order = [s for s in ["random", "margin", "entropy"] if any(r["strategy"] == s for r in rows)]
by = defaultdict(dict)
for r in rows:
    by[r["strategy"]][int(r["seed"])] = r
seeds = sorted({int(r["seed"]) for r in rows})


def ms(vs):
    if not vs:
        return "-"
    sd = statistics.stdev(vs) if len(vs) > 1 else 0.0
    return "%.4f ± %.4f" % (statistics.mean(vs), sd)


lines = []
for metric, name in [("ndcg10", "nDCG@10"), ("mrr10", "MRR@10"), ("recall100", "Recall@100")]:
    lines.append("**%s** (test split, the whole corpus ranked)\n" % name)
    lines.append("| strategy | " + " | ".join("seed %d" % s for s in seeds) + " | mean ± sd | runs |")
    lines.append("|---|" + "---|" * (len(seeds) + 2))
    for st in order:
        vs = [float(by[st][s][metric]) for s in seeds if s in by[st]]
        cells = ["%.4f" % float(by[st][s][metric]) if s in by[st] else "-" for s in seeds]
        lines.append("| %s | %s | %s | %d |" % (st, " | ".join(cells), ms(vs), len(vs)))
    lines.append("")
lines.append("**Difference to random, nDCG@10, per seed** (same seed: same student initialisation and the same "
             "random first round)\n")
lines.append("| strategy | " + " | ".join("seed %d" % s for s in seeds) + " | mean ± sd |")
lines.append("|---|" + "---|" * (len(seeds) + 1))
for st in order:
    if st == "random":
        continue
    ds = [float(by[st][s]["ndcg10"]) - float(by["random"][s]["ndcg10"]) for s in seeds if s in by[st] and s in by["random"]]
    cells = ["%+.4f" % (float(by[st][s]["ndcg10"]) - float(by["random"][s]["ndcg10"]))
             if s in by[st] and s in by["random"] else "-" for s in seeds]
    lines.append("| %s | %s | %s |" % (st, " | ".join(cells), ms(ds).replace("±", "±") if ds else "-"))
lines.append("")
lines.append("**Dev nDCG@10 after each round** (mean over the seeds that ran; the student ranks the whole corpus)\n")
nr = max(len(r["dev_ndcg10_by_round"].split(",")) for r in rows)
lines.append("| strategy | " + " | ".join("round %d" % (i + 1) for i in range(nr)) + " |")
lines.append("|---|" + "---|" * nr)
dev = {}
for st in order:
    per = [[float(x) for x in by[st][s]["dev_ndcg10_by_round"].split(",")] for s in seeds if s in by[st]]
    dev[st] = [statistics.mean(p[i] for p in per) for i in range(nr)]
    lines.append("| %s | %s |" % (st, " | ".join("%.4f" % v for v in dev[st])))
lines.append("")
lines.append("Queries labelled per run: %s; pairs the teacher was asked in these runs: %s (the scores came from "
             "the store); seconds per run: %s." % (
                 ", ".join(sorted({r["queries"] for r in rows})),
                 ", ".join(sorted({r["pairs_asked"] for r in rows})),
                 ", ".join("%.0f" % float(r["seconds"]) for r in rows)))
open(outdir + "/retrieval-select-table.md", "w").write("\n".join(lines) + "\n")

# the plot: left, test nDCG@10 per seed (dots) and mean (bar); right, dev nDCG@10 by round
W, H = 760, 340
colors = {"random": "#777777", "margin": "#1f77b4", "entropy": "#d62728"}
allv = [float(r["ndcg10"]) for r in rows] + [v for st in dev for v in dev[st]]
lo, hi = min(allv) - 0.01, max(allv) + 0.01


def y(v):
    return 290 - (v - lo) / (hi - lo) * 240


svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">'
       % (W, H), '<rect width="100%" height="100%" fill="white"/>']
for px in (60, 440):
    svg.append('<line x1="%d" y1="50" x2="%d" y2="290" stroke="black"/>' % (px, px))
    svg.append('<line x1="%d" y1="290" x2="%d" y2="290" stroke="black"/>' % (px, px + 300))
    steps = 5
    for i in range(steps + 1):
        v = lo + (hi - lo) * i / steps
        svg.append('<text x="%d" y="%.1f" text-anchor="end">%.3f</text>' % (px - 4, y(v) + 4, v))
        svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eeeeee"/>' % (px + 1, y(v), px + 300, y(v)))
svg.append('<text x="210" y="30" text-anchor="middle">test nDCG@10 (dots: seeds, bar: mean)</text>')
svg.append('<text x="590" y="30" text-anchor="middle">dev nDCG@10 after each round (mean over seeds)</text>')
for i, st in enumerate(order):
    cx = 60 + 50 + i * 100
    vs = [float(by[st][s]["ndcg10"]) for s in seeds if s in by[st]]
    m = statistics.mean(vs)
    svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="3"/>'
               % (cx - 25, y(m), cx + 25, y(m), colors[st]))
    for j, v in enumerate(vs):
        svg.append('<circle cx="%d" cy="%.1f" r="4" fill="%s"/>' % (cx - 10 + 10 * j, y(v), colors[st]))
    svg.append('<text x="%d" y="308" text-anchor="middle">%s</text>' % (cx, st))
for st in order:
    pts = " ".join("%.1f,%.1f" % (440 + 30 + i * (240 / max(nr - 1, 1)), y(v)) for i, v in enumerate(dev[st]))
    svg.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>' % (pts, colors[st]))
for i in range(nr):
    svg.append('<text x="%.1f" y="308" text-anchor="middle">round %d</text>' % (440 + 30 + i * (240 / max(nr - 1, 1)), i + 1))
for k, st in enumerate(order):
    svg.append('<rect x="%d" y="322" width="12" height="8" fill="%s"/><text x="%d" y="331">%s</text>'
               % (300 + k * 90, colors[st], 316 + k * 90, st))
svg.append("</svg>")
open(outdir + "/retrieval-select.svg", "w").write("\n".join(svg) + "\n")
