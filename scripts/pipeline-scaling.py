#!/usr/bin/env python3
"""Times `kd validate` on generated pipelines of growing size, one shape at a
time (many datasets, models, teachers, splits, stages, references, unknown
keys, duplicate keys, deep and wide flow collections), and fails when doubling
the input more than triples the time: validation must stay about linear in
the file's size (docs/fuzzing.md). libFuzzer's -timeout catches only gross
slowness, and its inputs are too small to show a quadratic loop.

    python3 scripts/pipeline-scaling.py [--kd bin/kd] [--n 2000] [--limit 20]
"""
import argparse, os, subprocess, sys, tempfile, time


def gen(kind, n):
    out = ["version: 1", "name: s"]
    if kind == "datasets":
        out += ["datasets:"] + ["  d%d: {features: x%d.csv}" % (i, i) for i in range(n)]
    elif kind == "models":
        out += ["models:"] + ["  m%d: {hidden: [4]}" % i for i in range(n)]
    elif kind == "teachers":
        out += ["teachers:"] + ["  t%d: {kind: exec, command: [a]}" % i for i in range(n)]
    elif kind == "splits":
        out += ["datasets:", "  d: {features: x.csv}", "splits:"]
        out += ["  - {from: d, parts: {p%d: 1}}" % i for i in range(n)]
    elif kind == "stages":
        out += ["datasets:", "  d: {features: x.csv}", "models:", "  m: {hidden: [4]}", "stages:"]
        out += ["  - train: {model: m, data: d, epochs: 1}" for _ in range(n)]
    elif kind == "references":
        out += ["stages:"] + ["  - evaluate: {models: [m%d], data: d%d}" % (i, i) for i in range(n)]
    elif kind == "unknown-keys":
        out += ["k%d: 1" % i for i in range(n)]
    elif kind == "duplicate-keys":
        out += ["models:"] + ["  m: {hidden: [4]}" for _ in range(n)]
    elif kind == "flow":
        out.append("x: [" + ",".join("[%d]" % i for i in range(n)) + "]")
    elif kind == "deep":
        out.append("x: " + "[" * n + "]" * n)
    return "\n".join(out) + "\n"


KINDS = ["datasets", "models", "teachers", "splits", "stages", "references", "unknown-keys",
         "duplicate-keys", "flow", "deep"]


def timed(kd, path, limit):
    t = time.monotonic()
    try:
        subprocess.run([kd, "validate", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=limit)
    except subprocess.TimeoutExpired:
        return float("inf")
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kd", default="bin/kd")
    ap.add_argument("--n", type=int, default=2000, help="the smaller size; the larger is 4 times it")
    ap.add_argument("--limit", type=float, default=20, help="seconds before a run counts as too slow")
    a = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory(prefix="kd-scaling-") as tmp:
        for kind in KINDS:
            times = []
            for n in (a.n, 4 * a.n):
                p = os.path.join(tmp, "%s-%d.yaml" % (kind, n))
                with open(p, "w") as f:
                    f.write(gen(kind, n))
                times.append(timed(a.kd, p, a.limit))
            # 4x the input: linear is 4x the time, quadratic 16x; allow noise
            # and the process start-up (a floor of 50 ms)
            ratio = max(times[1], 0.05) / max(times[0], 0.05)
            ok = ratio < 8
            bad += not ok
            print("%-15s n=%-6d %8.2fs   n=%-6d %8.2fs   x%-6.1f %s" % (
                kind, a.n, times[0], 4 * a.n, times[1], ratio, "ok" if ok else "SUPER-LINEAR"))
    print("pipeline scaling: %d shapes, %d super-linear" % (len(KINDS), bad))
    sys.exit(1 if bad else 0)


main()
