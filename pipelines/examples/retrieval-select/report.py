#!/usr/bin/python3
"""The table and the plot of the retrieval query-selection experiment
(run.sh writes the results).

    report.py runs/retrieval-select/results.tsv docs/experiments

Writes retrieval-select-table.md (test nDCG@10, MRR@10, Recall@100 per
strategy: every seed, the mean and the sample standard deviation; the
difference to random per seed) and retrieval-select.svg (test nDCG@10 per
seed and strategy). With runs/retrieval-select/reference.tsv beside the
results (BM25 and the teacher, run.sh writes it), a table of those too.
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
    lines.append("| %s | %s | %s |" % (st, " | ".join(cells), ("%+.4f ± %.4f" % (statistics.mean(ds), statistics.stdev(ds) if len(ds) > 1 else 0.0)) if ds else "-"))
lines.append("")
ref = results.rsplit("/", 1)[0] + "/reference.tsv"
try:
    refs = list(csv.DictReader(open(ref), delimiter="\t"))
except OSError:
    refs = []
if refs:
    lines.append("**References** (test split; the teacher re-ranks BM25's top 100, so its Recall@100 is BM25's)\n")
    lines.append("| ranker | nDCG@10 | MRR@10 | Recall@100 |")
    lines.append("|---|---|---|---|")
    for r in refs:
        lines.append("| %s | %.4f | %.4f | %.4f |" % (r["ranker"], float(r["ndcg10"]), float(r["mrr10"]),
                                                   float(r["recall100"])))
    lines.append("")
lines.append("Per run (in the order they ran, one store for all): queries labelled, pairs the teacher was "
             "asked (fewer when an earlier run had scored them), wall and CPU seconds:\n")
lines.append("| run | queries | pairs asked | wall s | CPU s |")
lines.append("|---|---|---|---|---|")
for r in rows:
    lines.append("| %s, seed %s | %d | %d | %s | %s |" % (r["strategy"], r["seed"], float(r["queries"]),
                                                       float(r["pairs_asked"]), r["seconds"], r["cpu_seconds"]))
open(outdir + "/retrieval-select-table.md", "w").write("\n".join(lines) + "\n")

# the plot: test nDCG@10 per seed (dots) and its mean (bar) per strategy
W, H = 420, 340
colors = {"random": "#777777", "margin": "#1f77b4", "entropy": "#d62728"}
allv = [float(r["ndcg10"]) for r in rows]
lo, hi = min(allv) - 0.005, max(allv) + 0.005


def y(v):
    return 290 - (v - lo) / (hi - lo) * 240


svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">'
       % (W, H), '<rect width="100%" height="100%" fill="white"/>']
px = 70
svg.append('<line x1="%d" y1="50" x2="%d" y2="290" stroke="black"/>' % (px, px))
svg.append('<line x1="%d" y1="290" x2="%d" y2="290" stroke="black"/>' % (px, px + 320))
for i in range(6):
    v = lo + (hi - lo) * i / 5
    svg.append('<text x="%d" y="%.1f" text-anchor="end">%.3f</text>' % (px - 4, y(v) + 4, v))
    svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eeeeee"/>' % (px + 1, y(v), px + 320, y(v)))
svg.append('<text x="%d" y="24" text-anchor="middle">WordNet test nDCG@10, a quarter of the training queries</text>'
           % (W // 2))
svg.append('<text x="%d" y="40" text-anchor="middle">(dots: seeds; bar: mean)</text>' % (W // 2))
for i, st in enumerate(order):
    cx = px + 60 + i * 100
    vs = [float(by[st][s]["ndcg10"]) for s in seeds if s in by[st]]
    m = statistics.mean(vs)
    svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="3"/>'
               % (cx - 25, y(m), cx + 25, y(m), colors[st]))
    for j, v in enumerate(vs):
        svg.append('<circle cx="%d" cy="%.1f" r="4" fill="%s"/>' % (cx - 10 + 10 * j, y(v), colors[st]))
    svg.append('<text x="%d" y="310" text-anchor="middle">%s</text>' % (cx, st))
svg.append("</svg>")
open(outdir + "/retrieval-select.svg", "w").write("\n".join(svg) + "\n")
