#!/usr/bin/python3
"""The class-summed empirical NTK of a kd MLP by PyTorch autograd, to check kd's.

Reads the safetensors file kd writes (layers.<i>.weight (out, in),
layers.<i>.bias (out), metadata `activation`) with nothing but json and numpy,
rebuilds the network as a function of its parameters, takes every example's
Jacobian with functorch's jacrev under vmap (torch.func in later PyTorch;
Debian's 1.13 ships it as functorch), and contracts

    K[i, j] = sum_c sum_p J[i, c, p] J[j, c, p]

It builds J explicitly (n x C x |theta| numbers), so memory bounds n; the
inputs are taken in chunks of --chunk examples for the Jacobians, then one
matrix product forms K.

    scripts/ntk_torch.py MODEL.safetensors [MODEL ...] --inputs X.npy
                         [--out K.npy [K ...]] [--dtype float64|float32]
                         [--chunk 64] [--threads N] [--max-gb 8]

X.npy: float32 or float64 (n, D) (kd_data_save_npy writes these). Several
models (one --out each) share one start of Python and torch.
Prints one line a model, `torch_ntk n=N params=P dtype=D seconds=S jacobian_gb=G`,
where seconds count the Jacobians and the contraction (not the loading).
Exit status 0 on success, 3 when torch or functorch cannot be imported,
4 when J would exceed --max-gb, 1 otherwise.
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    dtypes = {"F32": "<f4", "F64": "<f8"}
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        tensors[name] = np.frombuffer(data[b:e], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return tensors, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", nargs="+", default=[])
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--chunk", type=int, default=0,
                    help="examples per vmap call (default: as many as fit 256 MB of Jacobian, at most 64)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-gb", type=float, default=8.0)
    args = ap.parse_args()
    try:
        import torch
        from functorch import jacrev, vmap
    except Exception as e:  # noqa: BLE001 - any import failure means "no torch here"
        print(f"ntk_torch: cannot import torch/functorch: {e}", file=sys.stderr)
        return 3
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    if args.out and len(args.out) != len(args.models):
        print(f"ntk_torch: {len(args.models)} models but {len(args.out)} --out files", file=sys.stderr)
        return 1
    for k, model in enumerate(args.models):
        rc = ntk(torch, jacrev, vmap, dtype, model, args.out[k] if args.out else None, args)
        if rc:
            return rc
    return 0


def ntk(torch, jacrev, vmap, dtype, model, out, args):
    tensors, meta = read_safetensors(model)
    act_name = meta.get("activation", "relu")
    acts = {"relu": torch.relu, "tanh": torch.tanh, "identity": lambda z: z,
            "gelu": torch.nn.functional.gelu}
    if act_name not in acts:
        print(f"ntk_torch: unknown activation '{act_name}'", file=sys.stderr)
        return 1
    act = acts[act_name]
    n_layers = len([k for k in tensors if k.endswith(".weight")])
    params = []
    for i in range(n_layers):
        params.append(torch.tensor(np.array(tensors[f"layers.{i}.weight"]), dtype=dtype))
        params.append(torch.tensor(np.array(tensors[f"layers.{i}.bias"]), dtype=dtype))
    params = tuple(params)
    n_params = sum(p.numel() for p in params)
    x = torch.tensor(np.load(args.inputs), dtype=dtype)
    x = x.reshape(x.shape[0], -1)
    n = x.shape[0]
    C = params[-1].shape[0]

    def f(ps, xi):
        h = xi
        for i in range(n_layers):
            h = h @ ps[2 * i].T + ps[2 * i + 1]
            if i + 1 < n_layers:
                h = act(h)
        return h  # (C)

    gb = n * C * n_params * (8 if dtype == torch.float64 else 4) / 1e9  # J alone; the product K = J J^T is small
    if gb > args.max_gb:
        print(f"ntk_torch: the Jacobian of {n} examples would take {gb:.1f} GB (over --max-gb {args.max_gb})",
              file=sys.stderr)
        return 4

    elt = 8 if dtype == torch.float64 else 4
    chunk = args.chunk or max(1, min(64, int(256e6 // (C * n_params * elt))))
    per_example_jac = vmap(jacrev(f), in_dims=(None, 0))
    t0 = time.perf_counter()
    with torch.no_grad():
        rows = []
        for s in range(0, n, chunk):
            jac = per_example_jac(params, x[s:s + chunk])  # tuple of (b, C, *param shape)
            rows.append(torch.cat([j.reshape(j.shape[0], C, -1) for j in jac], dim=2).reshape(-1, C * n_params))
        J = torch.cat(rows, dim=0)  # (n, C |theta|): the class sum is one matrix product
        K = J @ J.T
    seconds = time.perf_counter() - t0
    if out:
        np.save(out, K.to(torch.float64).numpy())
    print(f"torch_ntk n={n} params={n_params} dtype={args.dtype} seconds={seconds:.6f} jacobian_gb={gb:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
