#!/usr/bin/python3
"""The PyTorch peer of bench/bench_retrieval.c: the same dual encoder, trained
and run the same way, and the same exact search.

  train   per tower nn.EmbeddingBag(2^18, 128, mode="mean", sparse=True) ->
          nn.Linear(128, 128) -> L2 normalisation; scores q d^T / 0.05;
          cross-entropy against the diagonal over batches of 128 pairs
          (in-batch negatives); torch.optim.SparseAdam(lr 1e-2) for the
          tables, torch.optim.Adam(lr 1e-3) for the linear layers; one epoch
          over a fresh permutation. Random ids: queries 60, documents 300,
          passed as flat ids + offsets (kd's CSR layout).
  encode  the document tower under torch.no_grad, batches of 1024.
  search  matmul + topk(100) over blocks of 256 queries, 256-dim float32.
Model creation and data generation are not timed; the first optimizer step
(which allocates SparseAdam's dense moments) is, as it is in kd.

    peer_torch_retrieval.py --threads 1 --pairs 16384 --encode 20000
                            --docs 100000 --queries 1000 --repeats 3

Thread settings come from the environment of the caller (OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS) plus torch.set_num_threads(--threads).
Prints one line of medians, per wall-clock second and per CPU second of the process:
  torch pairs_per_s=F texts_per_s=F queries_per_s=F cpu_pairs_per_s=F cpu_texts_per_s=F cpu_queries_per_s=F
Exit status 3 when torch cannot be imported.
"""
import argparse
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit(3)

BUCKETS, DIM, QLEN, DLEN, BATCH, TOPK, SEARCH_E = 1 << 18, 128, 60, 300, 128, 100, 256


class Tower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = torch.nn.EmbeddingBag(BUCKETS, DIM, mode="mean", sparse=True)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(DIM, DIM)])

    def forward(self, ids, offsets):
        x = self.bag(ids, offsets)
        x = self.layers[0](x)
        return F.normalize(x, dim=1)


def train(pairs, g):
    q_ids = torch.randint(0, BUCKETS, (pairs, QLEN), generator=g)
    d_ids = torch.randint(0, BUCKETS, (pairs, DLEN), generator=g)
    qt, dt = Tower(), Tower()
    sparse = [qt.bag.weight, dt.bag.weight]
    dense = list(qt.layers.parameters()) + list(dt.layers.parameters())
    opt_s = torch.optim.SparseAdam(sparse, lr=1e-2)
    opt_d = torch.optim.Adam(dense, lr=1e-3)
    q_off = torch.arange(0, BATCH * QLEN, QLEN)
    d_off = torch.arange(0, BATCH * DLEN, DLEN)
    t0, c0 = time.perf_counter(), time.process_time()
    perm = torch.randperm(pairs, generator=g)
    for s in range(0, pairs, BATCH):
        b = perm[s:s + BATCH]
        B = len(b)
        q = qt(q_ids[b].reshape(-1), q_off[:B])
        d = dt(d_ids[b].reshape(-1), d_off[:B])
        scores = q @ d.t() / 0.05
        loss = F.cross_entropy(scores, torch.arange(B))
        opt_s.zero_grad()
        opt_d.zero_grad()
        loss.backward()
        opt_s.step()
        opt_d.step()
    return pairs / (time.perf_counter() - t0), pairs / (time.process_time() - c0)


def encode(n, g):
    ids = torch.randint(0, BUCKETS, (n, DLEN), generator=g)
    t = Tower()
    off = torch.arange(0, 1024 * DLEN, DLEN)
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for s in range(0, n, 1024):
            b = ids[s:s + 1024]
            t(b.reshape(-1), off[:len(b)])
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def search(n_docs, n_queries, g):
    docs = torch.randn(n_docs, SEARCH_E, generator=g)
    q = torch.randn(n_queries, SEARCH_E, generator=g)
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for s in range(0, n_queries, 256):
            torch.topk(q[s:s + 256] @ docs.t(), TOPK, dim=1)
    return n_queries / (time.perf_counter() - t0), n_queries / (time.process_time() - c0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=16384)
    ap.add_argument("--encode", type=int, default=20000)
    ap.add_argument("--docs", type=int, default=100000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(1)
    r = [[], [], [], [], [], []]
    for _ in range(a.repeats):
        for i, (wall, cpu) in enumerate([train(a.pairs, g), encode(a.encode, g), search(a.docs, a.queries, g)]):
            r[i].append(wall)
            r[3 + i].append(cpu)
    m = [statistics.median(v) for v in r]
    print(f"torch pairs_per_s={m[0]:.3f} texts_per_s={m[1]:.3f} queries_per_s={m[2]:.3f} "
          f"cpu_pairs_per_s={m[3]:.3f} cpu_texts_per_s={m[4]:.3f} cpu_queries_per_s={m[5]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
