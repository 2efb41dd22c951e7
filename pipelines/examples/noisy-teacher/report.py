#!/usr/bin/python3
"""The noisy-teacher tables and plot from run.sh's raw rows (standard library only).

    report.py results.tsv bins.tsv noisy-teacher.md noisy-teacher.svg

results.tsv: one row per student (gold, loss, teacher, seed, method, accuracy,
teacher_accuracy, mean_weight, seconds); bins.tsv: the teacher's calibration
table per run. The markdown has one table per setting (gold size, loss,
teacher): each method's test accuracy (mean ± sample sd over the seeds) and
its gain over the unweighted student of the same seed, in points; then each
bin's teacher accuracy on validation. The SVG plots the gains.
"""
import csv
import statistics
import sys
from collections import defaultdict

METHODS = ["unweighted", "confidence", "debiased", "slam", "slam-nok", "epoch"]
LABELS = {"unweighted": "unweighted", "confidence": "confidence", "debiased": "debiased (gold-only reference)",
          "slam": "slam, 1/(k-1)", "slam-nok": "slam, no 1/(k-1)", "epoch": "epoch (old per-epoch weight)"}
TEACHERS = {"clean": "teacher as trained", "flip20": "answers flipped on 20%", "flip40": "answers flipped on 40%"}
LOSSES = {"hard": "hard labels (teacher argmax)", "hinton": "soft labels (Hinton, T = 4)"}

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
bins = list(csv.DictReader(open(sys.argv[2]), delimiter="\t"))


def sd(vs):
    return statistics.stdev(vs) if len(vs) > 1 else 0.0


def key(r):
    return (int(r["gold"]), r["loss"], r["teacher"])


order = lambda k: (k[0], list(LOSSES).index(k[1]) if k[1] in LOSSES else 9,
                   list(TEACHERS).index(k[2]) if k[2] in TEACHERS else 9)
settings = sorted({key(r) for r in rows}, key=order)
acc = defaultdict(dict)        # (setting, method) -> {seed: accuracy}
tacc = defaultdict(dict)       # setting -> {seed: teacher accuracy}
weight = defaultdict(list)
for r in rows:
    acc[(key(r), r["method"])][int(r["seed"])] = float(r["accuracy"])
    tacc[key(r)][int(r["seed"])] = float(r["teacher_accuracy"])
    weight[(key(r), r["method"])].append(float(r["mean_weight"]))

out = []
summary = []   # (setting, method, mean gain, sd)
for s in settings:
    g, loss, t = s
    seeds = sorted(tacc[s])
    out.append("### %s gold images, %s, %s" % (format(g, ","), LOSSES.get(loss, loss), TEACHERS.get(t, t)))
    out.append("")
    ta = list(tacc[s].values())
    out.append("Teacher test accuracy %.4f ± %.4f; seeds %s." % (statistics.mean(ta), sd(ta),
                                                                  ", ".join(map(str, seeds))))
    out.append("")
    out.append("| method | test accuracy | gain over unweighted (points) | wins | mean weight |")
    out.append("|---|---:|---:|---:|---:|")
    base = acc[(s, "unweighted")]
    for m in METHODS:
        a = acc.get((s, m))
        if not a:
            continue
        vs = [a[k] for k in sorted(a)]
        if m == "unweighted":
            gain, wins = "", ""
        else:
            ds = [100 * (a[k] - base[k]) for k in sorted(a) if k in base]
            gain = "%+.2f ± %.2f" % (statistics.mean(ds), sd(ds))
            wins = "%d of %d" % (sum(d > 0 for d in ds), len(ds))
            summary.append((s, m, statistics.mean(ds), sd(ds)))
        out.append("| %s | %.4f ± %.4f (%d) | %s | %s | %.3f |" % (
            LABELS[m], statistics.mean(vs), sd(vs), len(vs), gain, wins, statistics.mean(weight[(s, m)])))
    out.append("")

# All settings at a glance: each method's gain over unweighted, in points.
meths = [m for m in METHODS if m != "unweighted"]
head = ["| gold | loss | teacher | seeds | teacher acc. | unweighted | " + " | ".join(LABELS[m] for m in meths) + " |",
        "|---:|---|---|---:|---:|---:|" + "---:|" * len(meths)]
for s in settings:
    g, loss, t = s
    base = acc[(s, "unweighted")]
    cells = []
    for m in meths:
        hit = [(gg, d) for (ss, mm, gg, d) in summary if ss == s and mm == m]
        cells.append("%+.2f ± %.2f" % hit[0] if hit else "not run")
    bv = list(base.values())
    head.append("| %s | %s | %s | %d | %.4f | %.4f ± %.4f | %s |" % (
        format(g, ","), loss, t, len(bv), statistics.mean(tacc[s].values()), statistics.mean(bv), sd(bv),
        " | ".join(cells)))
out = ["### Summary: gain over unweighted distillation (points, mean ± sd over seeds)", ""] + head + [""] + out

# The teacher's accuracy per confidence bin on validation, averaged over seeds.
out.append("### The teacher's accuracy per confidence bin (validation, 5,000 images; mean over seeds)")
out.append("")
bkeys = sorted({(int(b["gold"]), b["loss"], b["teacher"]) for b in bins}, key=order)
seen = set()
for bk in bkeys:
    g, loss, t = bk
    if (g, t) in seen:   # the teacher does not depend on the student's loss
        continue
    seen.add((g, t))
    sel = [b for b in bins if (int(b["gold"]), b["loss"], b["teacher"]) == bk]
    by = defaultdict(list)
    for b in sel:
        by[int(b["bin"])].append(b)
    nseeds = len({b["seed"] for b in sel})
    out.append("%s gold, %s (%d seeds):" % (format(g, ","), TEACHERS.get(t, t), nseeds))
    out.append("")
    out.append("| bin | confidence from | to | examples | teacher accuracy | k (SLaM) |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    for i in sorted(by):
        bs = by[i]
        f = lambda c: statistics.mean(float(b[c]) for b in bs)
        out.append("| %d | %.4f | %.4f | %.0f | %.4f | %.1f |" % (i, f("lo"), f("hi"), f("count"), f("accuracy"),
                                                                 f("k")))
    out.append("")
total = sum(float(r["seconds"]) for r in rows if r["method"] == "unweighted")
out.append("%d kd runs (one per setting and seed, all methods in each), %.0f s of wall time in all." % (
    sum(1 for r in rows if r["method"] == "unweighted"), total))
text = "\n".join(out) + "\n"
open(sys.argv[3], "w").write(text)
print(text)

# SVG: gain over unweighted (points) per method, one group per setting, ± sd.
meths = [m for m in METHODS if m != "unweighted"]
colors = {"confidence": "#1f77b4", "debiased": "#ff7f0e", "slam": "#2ca02c", "slam-nok": "#98df8a", "epoch": "#d62728"}
W, H, left, top, bottom = 900, 420, 60, 40, 110
groups = [s for s in settings if any((s, m) in acc for m in meths)]
vals = [abs(g) + d for (_, _, g, d) in summary] or [1.0]
lim = max(1.0, max(vals) * 1.1)
plot_h = H - top - bottom
y = lambda v: top + plot_h / 2 - v / lim * plot_h / 2
gw = (W - left - 20) / max(1, len(groups))
bw = gw * 0.8 / len(meths)
svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (W, H),
       '<rect width="100%" height="100%" fill="white"/>',
       '<text x="%d" y="20" font-size="13">Noisy teacher: test-accuracy gain over the unweighted student (points, mean ± sd over seeds)</text>' % left]
for tick in [-lim, -lim / 2, 0, lim / 2, lim]:
    svg.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>' % (left, W - 20, y(tick), y(tick),
                                                                             "#000" if tick == 0 else "#ddd"))
    svg.append('<text x="%d" y="%.1f" text-anchor="end">%+.1f</text>' % (left - 4, y(tick) + 4, tick))
for gi, s in enumerate(groups):
    x0 = left + gi * gw + gw * 0.1
    for mi, m in enumerate(meths):
        hit = [(g, d) for (ss, mm, g, d) in summary if ss == s and mm == m]
        if not hit:
            continue
        g, d = hit[0]
        x = x0 + mi * bw
        svg.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %+.2f ± %.2f</title></rect>'
                   % (x, min(y(g), y(0)), bw - 1, abs(y(g) - y(0)), colors[m], LABELS[m], g, d))
        svg.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#333"/>' % (x + bw / 2, x + bw / 2,
                                                                                     y(g - d), y(g + d)))
    gold, loss, t = s
    svg.append('<text x="%.1f" y="%d" text-anchor="middle">%s gold</text>' % (x0 + gw * 0.4, H - bottom + 16, format(gold, ",")))
    svg.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x0 + gw * 0.4, H - bottom + 30, loss))
    svg.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x0 + gw * 0.4, H - bottom + 44, t))
for mi, m in enumerate(meths):
    svg.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' % (left + mi * 160, H - 30, colors[m]))
    svg.append('<text x="%d" y="%d">%s</text>' % (left + mi * 160 + 14, H - 21, LABELS[m]))
svg.append("</svg>")
open(sys.argv[4], "w").write("\n".join(svg) + "\n")
