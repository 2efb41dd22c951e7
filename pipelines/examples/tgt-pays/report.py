#!/usr/bin/python3
"""Tables and a plot from the TGT experiment's results (run.sh writes them).

    report.py runs/tgt-pays/results.tsv runs/tgt-pays/tuning.tsv docs/experiments

Copies both files to OUT/tgt-pays-results.tsv and OUT/tgt-pays-tuning.tsv and
writes OUT/tgt-pays-table.md (test accuracy per method and pool, mean and
sample standard deviation over seeds; TGT's paired gains over KD on the pool
and over augmentation; the tuning runs) and OUT/tgt-pays.svg. Standard
library only.
"""
import csv
import shutil
import statistics
import sys
from collections import defaultdict

results, tuning, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.copyfile(results, outdir + "/tgt-pays-results.tsv")
shutil.copyfile(tuning, outdir + "/tgt-pays-tuning.tsv")
rows = list(csv.DictReader(open(results), delimiter="\t"))
trows = list(csv.DictReader(open(tuning), delimiter="\t"))
METHODS = ["kd-pool", "augment", "tgt-random", "tgt-gradient", "oracle", "ablation-random", "ablation-gradient",
           "tgt-random-big"]
NAMES = {"kd-pool": "KD on P", "augment": "P + augmentations", "tgt-random": "TGT random (AE on U)",
         "tgt-gradient": "TGT gradient (AE on U)", "oracle": "oracle: P + natural images from U",
         "ablation-random": "ablation: TGT random, AE on P", "ablation-gradient": "ablation: TGT gradient, AE on P",
         "tgt-random-big": "TGT random, larger AE on U"}
POOLS = ["100", "300", "1000", "lt1000", "3000"]
PNAME = {"100": "100", "300": "300", "1000": "1,000", "lt1000": "1,000 long-tailed", "3000": "3,000"}
acc = defaultdict(dict)     # (method, pool) -> seed -> accuracy
param = {}
for r in rows:
    acc[(r["method"], r["pool"])][int(r["seed"])] = float(r["accuracy"])
    param[(r["method"], r["pool"])] = r["parameter"]
methods = [m for m in METHODS if any(k[0] == m for k in acc)]
pools = [p for p in POOLS if any(k[1] == p for k in acc)]


def cell(vs):
    if not vs:
        return "not run"
    sd = statistics.stdev(vs) if len(vs) > 1 else 0.0
    return "%.4f ± %.4f (%d)" % (statistics.mean(vs), sd, len(vs))


def mean(vs):
    return statistics.mean(vs) if vs else float("nan")


def paired(a, b, pool):
    """Points a - b over the seeds both have: (mean, sd, n, wins)."""
    x, y = acc.get((a, pool), {}), acc.get((b, pool), {})
    d = [100 * (x[s] - y[s]) for s in sorted(set(x) & set(y))]
    if not d:
        return None
    return statistics.mean(d), statistics.stdev(d) if len(d) > 1 else 0.0, len(d), sum(v > 0 for v in d)


L = ["Test accuracy, mean ± sample sd (seeds); the student is 784-64-10.", "",
     "| method | " + " | ".join("pool %s" % PNAME[p] for p in pools) + " |", "|---|" + "---:|" * len(pools)]
for m in methods:
    L.append("| %s | " % NAMES[m] + " | ".join(cell(list(acc.get((m, p), {}).values())) for p in pools) + " |")
L += ["", "Chosen on seed 1 by validation accuracy: " + "; ".join(
    "%s %s" % (PNAME[p], ", ".join("%s %s" % (m, param[(m, p)]) for m in ("augment", "tgt-random", "tgt-gradient")
                                   if (m, p) in param)) for p in pools) + " (sigma; step size; noise/shift).", ""]
L += ["Paired gains in points (mean ± sd over seeds, seeds where the first wins):", "",
      "| comparison | " + " | ".join("pool %s" % PNAME[p] for p in pools) + " |", "|---|" + "---:|" * len(pools)]
for a, b in [("tgt-random", "kd-pool"), ("tgt-gradient", "kd-pool"), ("tgt-random", "augment"),
             ("tgt-gradient", "augment"), ("augment", "kd-pool"), ("oracle", "kd-pool"),
             ("tgt-random", "ablation-random"), ("tgt-gradient", "ablation-gradient"),
             ("tgt-random-big", "tgt-random"), ("tgt-random-big", "augment")]:
    if a not in methods or b not in methods:
        continue
    cells = []
    for p in pools:
        g = paired(a, b, p)
        cells.append("not run" if g is None else "%+.2f ± %.2f (%d of %d)" % (g[0], g[1], g[3], g[2]))
    L.append("| %s − %s | " % (a, b) + " | ".join(cells) + " |")
L += ["", "Tuning runs (seed 1; validation accuracy / test accuracy):", "",
      "| pool | method | value | validation | test |", "|---|---|---:|---:|---:|"]
for r in sorted(trows, key=lambda r: (POOLS.index(r["pool"]) if r["pool"] in POOLS else 9, r["method"],
                                       [float(v) for v in r["parameter"].split("/")])):
    L.append("| %s | %s | %s | %.4f | %.4f |" % (PNAME.get(r["pool"], r["pool"]), r["method"], r["parameter"],
                                                float(r["validation"]), float(r["accuracy"])))
total = sum(float(r["seconds"]) for r in rows) + sum(float(r["seconds"]) for r in trows)
n_runs = len(trows) + sum(1 for r in rows if not (r["seed"] == "1" and r["method"] in ("augment", "tgt-random",
                                                                                       "tgt-gradient")))
L += ["", "%d kd runs, %.0f s of wall time in all." % (n_runs, total)]
table = "\n".join(L) + "\n"
open(outdir + "/tgt-pays-table.md", "w").write(table)
print(table)

# ---- the plot: mean test accuracy per method, grouped by pool, with the seeds' spread
W, H, L0, R, T, B = 760, 420, 60, 230, 20, 50
vals = [v for m in methods for p in pools for v in acc.get((m, p), {}).values()]
lo, hi = int(min(vals) * 50) / 50.0, int(max(vals) * 50 + 1) / 50.0
colours = ["#444444", "#8c564b", "#1f77b4", "#2ca02c", "#ff7f0e", "#9ecae1", "#98df8a", "#17becf"]
gw = (W - L0 - R) / len(pools)
bw = gw * 0.8 / len(methods)


def py(y):
    return T + (hi - y) / (hi - lo) * (H - T - B)


svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
       '<rect width="100%" height="100%" fill="white"/>']
y = lo
while y <= hi + 1e-9:
    svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L0, py(y), W - R, py(y)))
    svg.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>' % (L0 - 6, py(y) + 4, y))
    y += 0.02
for j, p in enumerate(pools):
    x0 = L0 + j * gw + gw * 0.1
    svg.append('<text x="%.1f" y="%d" text-anchor="middle">pool %s</text>' % (L0 + (j + 0.5) * gw, H - B + 18, PNAME[p]))
    for i, m in enumerate(methods):
        vs = list(acc.get((m, p), {}).values())
        if not vs:
            continue
        mu = mean(vs)
        x = x0 + i * bw
        svg.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                   % (x, py(mu), bw * 0.9, py(lo) - py(mu), colours[i % len(colours)]))
        for v in vs:
            svg.append('<circle cx="%.1f" cy="%.1f" r="2" fill="black"/>' % (x + bw * 0.45, py(v)))
svg.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">test accuracy (dots: seeds)</text>'
           % ((T + H - B) // 2, (T + H - B) // 2))
for i, m in enumerate(methods):
    svg.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' % (W - R + 10, T + 10 + 18 * i,
                                                                           colours[i % len(colours)]))
    svg.append('<text x="%d" y="%d">%s</text>' % (W - R + 26, T + 19 + 18 * i, NAMES[m]))
svg.append("</svg>")
open(outdir + "/tgt-pays.svg", "w").write("\n".join(svg) + "\n")
