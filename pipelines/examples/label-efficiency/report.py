#!/usr/bin/python3
"""Tables and a plot from the label-efficiency results (run.sh writes them).

    report.py runs/label-efficiency/results.tsv docs/experiments

Writes label-efficiency.md (test accuracy, mean and sample standard
deviation over seeds, per strategy and budget) and label-efficiency.svg
(accuracy against budget). Standard library only.
"""
import csv
import math
import statistics
import sys
from collections import defaultdict

results, outdir = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(results), delimiter="\t"))
acc = defaultdict(list)
secs = defaultdict(list)
for r in rows:
    acc[(r["strategy"], int(r["budget"]))].append(float(r["accuracy"]))
    secs[(r["strategy"], int(r["budget"]))].append(float(r["seconds"]))
strategies = [s for s in ["random", "entropy", "margin", "least-confidence", "iwes", "iwes-two", "rad", "tgt"]
              if any(k[0] == s for k in acc)]
budgets = sorted({b for (s, b) in acc if s != "ceiling"})
ceiling = [v for (s, b), vs in acc.items() if s == "ceiling" for v in vs]


def cell(vs):
    if not vs:
        return "-"
    sd = statistics.stdev(vs) if len(vs) > 1 else 0.0
    return "%.4f ± %.4f (%d)" % (statistics.mean(vs), sd, len(vs))


def mean(vs):
    return statistics.mean(vs) if vs else float("nan")


lines = ["| strategy | " + " | ".join("%d queries" % b for b in budgets) + " |",
         "|---|" + "---:|" * len(budgets)]
for s in strategies:
    best = ""
    lines.append("| %s | " % s + " | ".join(cell(acc.get((s, b), [])) for b in budgets) + " |")
lines.append("")
if ceiling:
    lines.append("Ceiling, distillation on all 50,000 pool images (one round, 20 epochs): %s."
                 % cell(ceiling))
lines.append("")
for b in budgets:
    rnd = mean(acc.get(("random", b), []))
    act = [(mean(acc[(s, b)]), s) for s in strategies if s != "random" and (s, b) in acc]
    if act and not math.isnan(rnd):
        m, s = max(act)
        lines.append("- %d queries: best active strategy %s, %.4f, %+.2f points over random (%.4f)."
                     % (b, s, m, 100 * (m - rnd), rnd))
# The goal: the best strategy at 5,000 queries against what random selection
# needs for the same accuracy, read off random's mean curve (linear in
# log(queries) between the measured budgets).
rnd_curve = [(b, mean(acc[("random", b)])) for b in budgets if ("random", b) in acc]
if ("random", 5000) in acc:
    act = [(mean(acc[(s, 5000)]), s) for s in strategies if s != "random" and (s, 5000) in acc]
    if act:
        m, s = max(act)
        need = None
        for (b0, a0), (b1, a1) in zip(rnd_curve, rnd_curve[1:]):
            if a0 < m <= a1:
                t = (m - a0) / (a1 - a0)
                need = 10 ** (math.log10(b0) + t * (math.log10(b1) - math.log10(b0)))
                break
        lines.append("")
        if need:
            lines.append("- The best strategy at 5000 queries, %s (%.4f), is matched by random selection at about %.0f "
                         "queries (interpolated between the measured budgets): %.1f times as many teacher calls."
                         % (s, m, need, need / 5000))
        elif rnd_curve and m > rnd_curve[-1][1]:
            lines.append("- The best strategy at 5000 queries, %s (%.4f), is above random selection at every measured "
                         "budget, up to %d queries (%.4f): more than %.0f times as many teacher calls."
                         % (s, m, rnd_curve[-1][0], rnd_curve[-1][1], rnd_curve[-1][0] / 5000))
total = sum(float(r["seconds"]) for r in rows)
lines.append("")
lines.append("%d runs, %.0f s of wall time in all (mean %.1f s per run)." % (len(rows), total, total / max(1, len(rows))))
table = "\n".join(lines) + "\n"
open(outdir + "/label-efficiency-table.md", "w").write(table)
print(table)

# ---- the plot: accuracy against budget (log scale), one line per strategy
W, H, L, R, T, B = 720, 440, 70, 170, 30, 50
xs = [math.log10(b) for b in budgets]
allv = [mean(acc[(s, b)]) for s in strategies for b in budgets if (s, b) in acc] + ([mean(ceiling)] if ceiling else [])
lo, hi = math.floor(min(allv) * 100 - 1) / 100, math.ceil(max(allv) * 100 + 0.5) / 100


def px(x):
    return L + (x - xs[0]) / (xs[-1] - xs[0] or 1) * (W - L - R)


def py(y):
    return T + (hi - y) / (hi - lo) * (H - T - B)


colours = ["#444444", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
       '<rect width="100%" height="100%" fill="white"/>']
y = lo
while y <= hi + 1e-9:
    svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, py(y), W - R, py(y)))
    svg.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>' % (L - 6, py(y) + 4, y))
    y += 0.01
for b, x in zip(budgets, xs):
    svg.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (px(x), H - B + 18, b))
svg.append('<text x="%d" y="%d" text-anchor="middle">teacher queries (log scale)</text>' % ((L + W - R) // 2, H - 10))
svg.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">test accuracy</text>'
           % ((T + H - B) // 2, (T + H - B) // 2))
if ceiling:
    c = mean(ceiling)
    svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black" stroke-dasharray="5,4"/>' % (L, py(c), W - R, py(c)))
    svg.append('<text x="%d" y="%.1f">full pool (50,000)</text>' % (W - R + 6, py(c) + 4))
for i, s in enumerate(strategies):
    pts = [(px(x), py(mean(acc[(s, b)]))) for b, x in zip(budgets, xs) if (s, b) in acc]
    col = colours[i % len(colours)]
    svg.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
               % (col, " ".join("%.1f,%.1f" % p for p in pts)))
    for p in pts:
        svg.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (p[0], p[1], col))
    svg.append('<text x="%d" y="%d" fill="%s">%s</text>' % (W - R + 6, T + 70 + 16 * i, col, s))
svg.append("</svg>")
open(outdir + "/label-efficiency.svg", "w").write("\n".join(svg) + "\n")
