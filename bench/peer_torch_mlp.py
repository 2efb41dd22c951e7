#!/usr/bin/python3
"""The PyTorch peer of bench/bench_mlp.c: trains the same MLP the same way.

Same shapes (a stack of torch.nn.Linear with ReLU, and Dropout after each
hidden activation when --dropout > 0), softmax cross-entropy, Adam lr 1e-3,
float32, batches of 256 taken through a fresh random permutation of the
examples every epoch (the last partial batch included), the data a
pre-loaded float tensor scaled to [0, 1]. Only the training loop is timed:
model and optimizer creation and the data loading are not.

What a careful user sets, applied to every setting below (measured on this
machine; docs/benchmarks.md has the figures):

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824
        PyTorch's CPU allocator is glibc malloc: with the default dynamic
        thresholds, tensors of a few hundred KiB are sometimes mmap'ed and
        unmapped, and the top of the heap is sometimes returned to the system,
        so the same epoch takes 0 to 70,000 page faults from run to run. Fixed
        thresholds (tensors up to 32 MiB from the heap, the heap never
        trimmed) keep the memory mapped: no page faults after the warm-up.
    torch.set_flush_denormal(True)
        denormal floats flushed to zero (none were seen in these networks'
        Adam state; it costs nothing and rules them out);
    a warm-up of one whole epoch (allocator, thread pools, caches) before
        the first timed run.

--malloc-default drops the allocator setting, to see the difference.

Debian's PyTorch runs its own kernels on OpenMP threads and its GEMMs on
OpenBLAS threads, and the two pools spin-wait against each other when both
are larger than 1. So for --threads N > 1 the script tries several thread
settings, each in its own process (the variables must be set before torch is
imported), and reports the best:

    omp<N>-blas1   OMP_NUM_THREADS=N, OPENBLAS_NUM_THREADS=1, torch.set_num_threads(N)
    omp1-blas<N>   OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=N, torch.set_num_threads(1)
    omp<N>-blas<N>-passive
                   both N, OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep instead
                   of spinning while OpenBLAS works)

Usage:
    peer_torch_mlp.py --check
    peer_torch_mlp.py --sizes 784-256-10 [--dropout 0.2] --threads 2
                      --examples 60000 --epochs 3 --repeats 5
                      (--images IDX.gz --labels IDX.gz | --random)

    peer_torch_mlp.py ... --serve     (no --repeats: driven through stdin)

Each setting runs in a worker process that loads the data, warms up and then
trains once per "run" line on its stdin, so the settings are measured in
turns rather than one after the other. With --serve the script itself reads
"run" lines: one round of every setting per line, answered by
"torch_round_done"; end of input ends it. bench_mlp uses this to put its own
kd and sgemm measurements in the same rounds, so that all three see the same
load on a shared machine.

Output (stdout), one record a line, space-separated key=value:
    torch_ready   (--serve: every worker is warmed up)
    torch_run     setting=S rep=I ex_per_s=F seconds=F loss=F faults=N
                  (faults: minor page faults of the worker during the run)
    torch_round_done
    torch_setting setting=S median=F min=F max=F      (at the end)
    torch_best    setting=S median=F min=F max=F      (the highest median)
Exit status 0 on success, 3 when torch cannot be imported, 1 otherwise.
"""
import argparse
import gzip
import os
import resource
import struct
import subprocess
import sys
import time


def read_idx(path):
    import numpy as np
    with open(path, "rb") as f:
        magic = f.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"peer: {path}: only unsigned-byte IDX files are supported")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    arr = np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8)
    return arr.reshape(dims[0], -1) if ndim > 1 else arr


# See the module's docstring: glibc malloc with fixed thresholds.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def settings_for(n):
    if n == 1:
        return [("omp1-blas1", {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}, 1)]
    s = str(n)
    return [
        (f"omp{n}-blas1", {"OMP_NUM_THREADS": s, "OPENBLAS_NUM_THREADS": "1"}, n),
        (f"omp1-blas{n}", {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": s}, 1),
        (f"omp{n}-blas{n}-passive",
         {"OMP_NUM_THREADS": s, "OPENBLAS_NUM_THREADS": s, "OMP_WAIT_POLICY": "PASSIVE"}, n),
    ]


def median(v):
    v = sorted(v)
    k = len(v)
    return v[k // 2] if k % 2 else 0.5 * (v[k // 2 - 1] + v[k // 2])


def worker(a):
    """One thread setting (already in the environment): warm up, then time."""
    import numpy as np
    import torch
    torch.set_num_threads(a.torch_threads)
    torch.set_flush_denormal(True)
    sizes = [int(s) for s in a.sizes.split("-")]
    if a.random:
        g = np.random.default_rng(1)
        x = g.random((a.examples, sizes[0]), dtype=np.float32)
        y = g.integers(0, sizes[-1], a.examples).astype(np.int64)
    else:
        x = read_idx(a.images)[:a.examples].astype(np.float32) / 255.0
        y = read_idx(a.labels)[:a.examples].astype(np.int64)
        if x.shape[1] != sizes[0]:
            sys.exit(f"peer: {a.images} has {x.shape[1]} features, the network takes {sizes[0]}")
    x = torch.from_numpy(np.ascontiguousarray(x))
    y = torch.from_numpy(y)
    n = x.shape[0]
    torch.manual_seed(1)

    def make():
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i + 2 < len(sizes):
                layers.append(torch.nn.ReLU())
                if a.dropout > 0:
                    layers.append(torch.nn.Dropout(a.dropout))
        model = torch.nn.Sequential(*layers)
        model.train()
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    loss_fn = torch.nn.CrossEntropyLoss()

    def train(model, opt, epochs, limit=None):
        total = 0.0
        for _ in range(epochs):
            perm = torch.randperm(n)
            stop = n if limit is None else min(n, limit)
            for off in range(0, stop, a.batch):
                idx = perm[off:off + a.batch]
                xb, yb = x[idx], y[idx]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
                total = loss.item()
        return total

    # Loaded; the driver starts the workers together but warms them up one
    # at a time, so that no warm-up shares the cores with another.
    print(f"torch_loaded setting={a.setting}", flush=True)
    if sys.stdin.readline().strip() != "warmup":
        return
    model, opt = make()
    train(model, opt, 1)  # warm-up, one epoch: allocator, thread pools, caches
    print(f"torch_ready setting={a.setting}", flush=True)
    # One measurement per "run" line on stdin, so that the driver can
    # interleave the settings (and the caller its own runs) on a noisy machine.
    rep = 0
    for cmd in sys.stdin:
        if cmd.strip() != "run":
            break
        model, opt = make()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        loss = train(model, opt, a.epochs)
        dt = time.perf_counter() - t0
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        print(f"torch_run setting={a.setting} rep={rep} ex_per_s={n * a.epochs / dt:.6g} "
              f"seconds={dt:.6g} loss={loss:.6g} faults={faults}", flush=True)
        rep += 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 0 when torch imports, 3 otherwise")
    p.add_argument("--sizes", default="784-256-10")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--examples", type=int, default=60000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--images")
    p.add_argument("--labels")
    p.add_argument("--random", action="store_true", help="random data instead of --images/--labels")
    p.add_argument("--only", help="run only this thread setting")
    p.add_argument("--malloc-default", action="store_true",
                   help="leave glibc malloc's thresholds at their defaults (page faults every run)")
    p.add_argument("--serve", action="store_true",
                   help="measure one round of every setting per 'run' line on stdin (bench_mlp uses this)")
    # internal: a worker process for one setting
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--setting", default="", help=argparse.SUPPRESS)
    p.add_argument("--torch-threads", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args()

    if a.check:
        try:
            import torch
        except Exception as e:  # ImportError, or a broken install
            print(f"torch_missing error={type(e).__name__}: {e}".replace("\n", " "))
            return 3
        print(f"torch_version version={torch.__version__}")
        return 0
    if not a.random and not (a.images and a.labels):
        p.error("give --images and --labels, or --random")
    if a.worker:
        worker(a)
        return 0

    workers = []
    try:
        for name, env_add, torch_threads in settings_for(a.threads):
            if a.only and a.only != name:
                continue
            env = dict(os.environ)
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS",
                      "GOTO_NUM_THREADS", "GLIBC_TUNABLES"):
                env.pop(k, None)
            env.update(env_add)
            if not a.malloc_default:
                env["GLIBC_TUNABLES"] = MALLOC_TUNABLES
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--setting", name,
                   "--torch-threads", str(torch_threads), "--sizes", a.sizes, "--dropout", str(a.dropout),
                   "--examples", str(a.examples), "--epochs", str(a.epochs), "--batch", str(a.batch)]
            cmd += ["--random"] if a.random else ["--images", a.images, "--labels", a.labels]
            w = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            workers.append([name, w, []])
        if not workers:
            print(f"peer: no thread setting named '{a.only}'", file=sys.stderr)
            return 1
        for name, w, _ in workers:
            if not w.stdout.readline().startswith("torch_loaded"):
                print(f"peer: setting {name} did not start (exit status {w.wait()})", file=sys.stderr)
                return 1
        for name, w, _ in workers:
            w.stdin.write("warmup\n")
            w.stdin.flush()
            if not w.stdout.readline().startswith("torch_ready"):
                print(f"peer: setting {name} failed to warm up (exit status {w.wait()})", file=sys.stderr)
                return 1

        def one_round():
            for rec in workers:
                name, w, rates = rec
                w.stdin.write("run\n")
                w.stdin.flush()
                line = w.stdout.readline()
                if not line.startswith("torch_run "):
                    print(f"peer: setting {name} failed (exit status {w.wait()})", file=sys.stderr)
                    return False
                print(line, end="", flush=True)
                kv = dict(f.split("=", 1) for f in line.split()[1:])
                rates.append(float(kv["ex_per_s"]))
            return True

        if a.serve:
            # Driven by the caller: a round of every setting per "run" line.
            print("torch_ready", flush=True)
            for cmd in sys.stdin:
                if cmd.strip() != "run":
                    break
                if not one_round():
                    return 1
                print("torch_round_done", flush=True)
        else:
            for _ in range(a.repeats):
                if not one_round():
                    return 1
    finally:
        for _, w, _ in workers:
            try:
                w.stdin.close()
            except OSError:
                pass
            w.wait()

    best = None
    for name, _, rates in workers:
        if not rates:
            continue
        rec = (median(rates), min(rates), max(rates), name)
        print(f"torch_setting setting={name} median={rec[0]:.6g} min={rec[1]:.6g} max={rec[2]:.6g}",
              flush=True)
        if best is None or rec[0] > best[0]:
            best = rec
    if best is not None:
        print(f"torch_best setting={best[3]} median={best[0]:.6g} min={best[1]:.6g} max={best[2]:.6g}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
