#!/usr/bin/env python3
"""The supervision-complexity experiment's report: reads the store of each
seed's run (RUNS/seed-*/kd.db), writes a Markdown table of complexities and
test accuracies and two SVG plots (complexity against teacher checkpoint, and
against temperature) into OUT. Python's standard library only (sqlite3); the
SVG is written by hand.

    report.py runs/supervision-complexity docs/experiments
"""
import glob
import math
import os
import re
import sqlite3
import statistics
import sys

STUDENTS = [("16", "784-16-10"), ("64", "784-64-10")]
TEMPS = [1, 2, 4]
MODELS = ["teacher", "s16_off", "s16_on", "s16_gold", "s64_off", "s64_on", "s64_gold"]


def stage_metrics(db, stage):
    """name -> value for the last run's stage `stage`."""
    rows = db.execute(
        "SELECT m.name, m.value FROM metrics m JOIN stages s ON s.id = m.stage_id "
        "WHERE s.name = ? AND s.run_id = (SELECT max(id) FROM runs) AND s.status = 'ok'",
        (stage,),
    ).fetchall()
    return dict(rows)


def load(runs):
    seeds = {}
    for path in sorted(glob.glob(os.path.join(runs, "seed-*", "kd.db"))):
        seed = int(re.search(r"seed-(\d+)", path).group(1))
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        seeds[seed] = {
            "16": stage_metrics(db, "complexity-16"),
            "64": stage_metrics(db, "complexity-64"),
            "test": stage_metrics(db, "test"),
        }
        db.close()
    return seeds


def mean_sd(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "—"
    if len(values) == 1:
        return "%.4g" % values[0]
    return "%.4g ± %.2g" % (statistics.mean(values), statistics.stdev(values))


def acc_text(values):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    m = statistics.mean(values)
    if len(values) == 1:
        return "%.4f" % m
    return "%.4f ± %.4f" % (m, statistics.stdev(values))


def epochs_of(metrics):
    return sorted({int(m.group(1)) for k in metrics for m in [re.match(r"complexity/teacher-t@epoch-(\d+)/", k)] if m})


# ------------------------------------------------------------------- SVG


def svg_plot(path, title, xlabel, ylabel, series, xticks, logy=True, hlines=()):
    """series: [(label, colour, dashed, [(x, y), ...])]; hlines: [(label, colour, y)]."""
    W, H, L, R, T, B = 640, 400, 70, 170, 40, 50
    ys = [y for _, _, _, pts in series for _, y in pts] + [y for _, _, y in hlines]
    xs = [x for _, _, _, pts in series for x, _ in pts]
    f = (lambda v: math.log10(v)) if logy else (lambda v: v)
    y0, y1 = math.floor(f(min(ys))), math.ceil(f(max(ys)))
    if not logy:
        y0, y1 = 0, max(ys) * 1.05
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1

    def px(x):
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def py(y):
        return T + (1 - (f(y) - y0) / (y1 - y0)) * (H - T - B)

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="%d" y="22" font-size="13">%s</text>' % (20, title),
        '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, H - B, W - R, H - B),
        '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, T, L, H - B),
        '<text x="%d" y="%d" text-anchor="middle">%s</text>' % ((L + W - R) / 2, H - 12, xlabel),
        '<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">%s</text>'
        % ((T + H - B) / 2, (T + H - B) / 2, ylabel),
    ]
    for x in xticks:
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>' % (px(x), H - B, px(x), H - B + 4))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (px(x), H - B + 17, x))
    if logy:
        for e in range(y0, y1 + 1):
            y = py(10.0 ** e)
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, y, W - R, y))
            out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (L - 5, y + 4, 10.0 ** e))
    for label, colour, y in hlines:
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="2,3"/>'
                   % (L, py(y), W - R, py(y), colour))
    legend = [(lab, col, dash) for lab, col, dash, _ in series] + [(lab, col, True) for lab, col, _ in hlines]
    for label, colour, dashed, pts in series:
        d = " ".join("%s%.1f,%.1f" % ("M" if i == 0 else "L", px(x), py(y)) for i, (x, y) in enumerate(pts))
        out.append('<path d="%s" fill="none" stroke="%s" stroke-width="1.6"%s/>'
                   % (d, colour, ' stroke-dasharray="6,3"' if dashed else ""))
        for x, y in pts:
            out.append('<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s"/>' % (px(x), py(y), colour))
    for i, (label, colour, dashed) in enumerate(legend):
        y = T + 10 + 18 * i
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>'
                   % (W - R + 10, y, W - R + 34, y, colour, ' stroke-dasharray="4,3"' if dashed else ""))
        out.append('<text x="%d" y="%d">%s</text>' % (W - R + 40, y + 4, label))
    out.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


def main():
    runs, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    seeds = load(runs)
    if not seeds:
        sys.exit("report.py: no %s/seed-*/kd.db" % runs)
    names = sorted(seeds)
    lines = ["# Supervision complexity on Fashion-MNIST (generated by report.py)", ""]
    lines.append("Seeds: %s. Complexity tr(Y^T (K + eps I)^-1 Y) of the class-summed NTK of each student at its "
                 "initial weights, on 2,000 training images, eps 1e-3, targets not centred; mean ± sd over seeds "
                 "(each seed retrains the teacher)." % ", ".join(map(str, names)))
    lines.append("")
    first = seeds[names[0]]["16"]
    ep = epochs_of(first)
    show = [e for e in ep if e in (1, 2, 5, 10, 15, 20)] or ep
    for key, arch in STUDENTS:
        lines.append("## Student %s" % arch)
        lines.append("")
        lines.append("| targets | complexity | adjusted |")
        lines.append("|---|---|---|")
        rows = ["gold"] + ["teacher-t@epoch-%d/T=%d" % (e, T) for T in TEMPS for e in show]
        for r in rows:
            c = [seeds[s][key].get("complexity/" + r) for s in names]
            a = [seeds[s][key].get("adjusted/" + r) for s in names]
            lines.append("| %s | %s | %s |" % (r, mean_sd(c), mean_sd(a)))
        lines.append("")
    lines.append("## Test accuracy (10,000 test images, 20 epochs each)")
    lines.append("")
    lines.append("| model | how | " + " | ".join("seed %d" % s for s in names) + " | mean ± sd |")
    lines.append("|---|---|" + "---|" * (len(names) + 1))
    how = {"teacher": "784-1024-1024-10, gold labels", "off": "offline: final teacher, Hinton T=4",
           "on": "online: teacher checkpoint of each epoch, Hinton T=4", "gold": "gold labels only"}
    for m in MODELS:
        vals = [seeds[s]["test"].get("%s/accuracy" % m) for s in names]
        h = how["teacher"] if m == "teacher" else how[m.split("_")[1]]
        lines.append("| %s | %s | %s | %s |" % (m, h, " | ".join("%.4f" % v if v is not None else "—" for v in vals),
                                               acc_text(vals)))
    lines.append("")
    with open(os.path.join(out, "supervision-complexity-results.md"), "w") as fh:
        fh.write("\n".join(lines))

    colours = {1: "#1f77b4", 2: "#ff7f0e", 4: "#2ca02c"}
    series, hl = [], []
    for key, arch in STUDENTS:
        for T in TEMPS:
            pts = []
            for e in ep:
                v = [seeds[s][key].get("complexity/teacher-t@epoch-%d/T=%d" % (e, T)) for s in names]
                v = [x for x in v if x is not None]
                if v:
                    pts.append((e, statistics.mean(v)))
            if pts:
                series.append(("%s T=%d" % (arch.split("-")[1], T), colours[T], key == "64", pts))
        g = [seeds[s][key].get("complexity/gold") for s in names]
        g = [x for x in g if x is not None]
        if g:
            hl.append(("%s gold" % arch.split("-")[1], "#d62728" if key == "16" else "#9467bd", statistics.mean(g)))
    svg_plot(os.path.join(out, "supervision-complexity-checkpoints.svg"),
             "Teacher-target complexity vs checkpoint (solid 784-16-10, dashed 784-64-10)",
             "teacher checkpoint (epoch)", "complexity (log scale)", series, [e for e in ep if e % 5 == 0 or e == 1],
             hlines=hl)
    series = []
    last = ep[-1] if ep else 0
    for key, arch in STUDENTS:
        for e, col in ((1, "#8c564b"), (last // 2 or 1, "#17becf"), (last, "#1f77b4")):
            pts = []
            for T in TEMPS:
                v = [seeds[s][key].get("complexity/teacher-t@epoch-%d/T=%d" % (e, T)) for s in names]
                v = [x for x in v if x is not None]
                if v:
                    pts.append((T, statistics.mean(v)))
            if pts:
                series.append(("%s epoch %d" % (arch.split("-")[1], e), col, key == "64", pts))
    svg_plot(os.path.join(out, "supervision-complexity-temperature.svg"),
             "Teacher-target complexity vs temperature (solid 784-16-10, dashed 784-64-10)",
             "temperature T", "complexity (log scale)", series, TEMPS, hlines=hl)
    print("wrote %s/supervision-complexity-results.md and two SVG plots" % out)


if __name__ == "__main__":
    main()
