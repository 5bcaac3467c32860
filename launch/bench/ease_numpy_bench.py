#!/usr/bin/env python3
"""ease_numpy_bench.py: Steck's NumPy EASE on a split file, timed, for the side-by-side figure.

  python3 launch/bench/ease_numpy_bench.py SPLIT.h5 [--lambda 500] [--dtype float64|float32]
      [--json OUT]

The reference is the three lines of Steck (2019), section 3 (X: the train rows, scipy.sparse):

    G = X.T @ X; G[diag] += lambda; P = np.linalg.inv(G); B = P / (-np.diag(P)); B[diag] = 0

Prints the seconds of the Gram and of the solve and the process's peak resident memory (GB), as
`recvae_dist configs/ease/*.yaml` prints them for the C++ fit (its "gram:", "ease: B in" and
"peak host memory" lines). NumPy's threads follow OPENBLAS_NUM_THREADS / OMP_NUM_THREADS. A
MemoryError is reported as such (exit 3): that is the figure for a shape NumPy cannot fit.
Needs numpy, scipy and h5py (Debian: python3-numpy python3-scipy python3-h5py).
"""

import argparse
import json
import resource
import sys
import time

try:
    import h5py
    import numpy as np
    import scipy.sparse as sp
except ImportError as missing:
    print(f"ease_numpy_bench.py: {missing.name} is missing", file=sys.stderr)
    sys.exit(1)


def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("split")
    ap.add_argument("--lambda", dest="lam", type=float, default=500.0)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--json")
    args = ap.parse_args()
    with h5py.File(args.split, "r") as f:
        g = f["train"]
        shape = tuple(int(v) for v in g.attrs["shape"])
        X = sp.csr_matrix((np.ones(g["indices"].shape[0], dtype=args.dtype), g["indices"][()], g["indptr"][()]),
                          shape=shape)
    out = {"users": shape[0], "items": shape[1], "nnz": int(X.nnz), "dtype": args.dtype, "lambda": args.lam}
    try:
        t0 = time.time()
        G = (X.T @ X).toarray()
        out["gram_seconds"] = time.time() - t0
        t1 = time.time()
        diag = np.diag_indices(G.shape[0])
        G[diag] += args.lam
        P = np.linalg.inv(G)
        del G
        B = P / (-np.diag(P))
        B[diag] = 0
        out["solve_seconds"] = time.time() - t1
        out["status"] = "ok"
    except MemoryError:
        out["status"] = "MemoryError"
    out["peak_gb"] = peak_gb()
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)
    return 0 if out["status"] == "ok" else 3


if __name__ == "__main__":
    sys.exit(main())
