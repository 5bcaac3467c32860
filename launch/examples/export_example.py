#!/usr/bin/env python3
"""export_example.py: top-k items for one history from a run's model.h5, with h5py and NumPy only.

  python3 launch/examples/export_example.py RUN_DIR/model.h5 ITEM_ID [ITEM_ID ...] [--k 10]

Prints "item,score" lines, best first, the history's own items excluded: the same lists as
`recvae_recommend RUN_DIR --users HISTORY.csv` gives. It is the model-export example of
docs/operations.md made runnable (tests/launch/run_export_example_test.sh checks it against
recvae_recommend). Model types:
recvae, multvae, multdae, ease (the others need a solve or per-user weights: data/README.md).
Exit status: 0 printed, 1 h5py/NumPy missing, 2 bad input.
"""

import argparse
import re
import sys

try:
    import h5py
    import numpy as np
except ImportError as missing:
    print(f"export_example.py: {missing.name} is missing (apt-get install python3-h5py python3-numpy)",
          file=sys.stderr)
    sys.exit(1)


def silu(a):
    return a / (1.0 + np.exp(-a))


def layer_norm(h, g, b, eps):
    return g * (h - h.mean()) / np.sqrt(h.var() + eps) + b


def recvae_scores(W, x, config):
    # Encoder mean on the L2-normalised history, then the decoder (RecVAE's scores use mu, no noise).
    eps = float(re.search(r"layernorm_eps:\s*(\S+)", config).group(1))
    e = lambda k: W["encoder." + k]
    x = x / np.linalg.norm(x)
    h = layer_norm(silu(x @ e("w1") + e("b1")), e("ln1.weight"), e("ln1.bias"), eps)
    skip = h
    for k in range(2, 6):
        h = layer_norm(silu(h @ e(f"fc{k}.weight").T + e(f"fc{k}.bias") + skip),
                       e(f"ln{k}.weight"), e(f"ln{k}.bias"), eps)
        skip = skip + h
    mu = h @ e("fc_mu.weight").T + e("fc_mu.bias")
    return mu @ W["decoder.weight"].T + W["decoder.bias"]


def multvae_scores(W, x, config):
    x = x / np.linalg.norm(x)
    q = np.tanh(x @ W["q1_w"] + W["q1_b"]) @ W["q2.weight"].T + W["q2.bias"]
    mu = q[: q.shape[0] // 2]                       # q2 gives [mu, logvar]
    return np.tanh(mu @ W["p1.weight"].T + W["p1.bias"]) @ W["p2.weight"].T + W["p2.bias"]


def multdae_scores(W, x, config):
    x = x / np.linalg.norm(x)
    return np.tanh(x @ W["q_w"] + W["q_b"]) @ W["p.weight"].T + W["p.bias"]


def ease_scores(W, x, config):
    return x @ W["B"]


SCORERS = {"recvae": recvae_scores, "multvae": multvae_scores, "multdae": multdae_scores, "ease": ease_scores}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="RUN_DIR/model.h5")
    ap.add_argument("items", nargs="+", help="the history: original item ids")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    try:
        f = h5py.File(args.model, "r")
    except OSError as e:
        print(f"export_example.py: {args.model}: {e}", file=sys.stderr)
        return 2
    kind = f.attrs.get("model_type", "")
    if kind not in SCORERS:
        print(f"export_example.py: {args.model}: model type '{kind}' is not covered here", file=sys.stderr)
        return 2
    W = {name: d[()].astype(np.float64) for name, d in f["weights"].items()}
    items = [s.decode() for s in f["item_ids"][()]]
    column = {item: j for j, item in enumerate(items)}
    unknown = [i for i in args.items if i not in column]
    if unknown:
        print(f"export_example.py: unknown item id(s): {' '.join(unknown)}", file=sys.stderr)
        return 2
    x = np.zeros(len(items))
    x[[column[i] for i in args.items]] = 1.0
    scores = SCORERS[kind](W, x, f.attrs["config"])
    scores[x > 0] = -np.inf
    for j in np.argsort(-scores, kind="stable")[: args.k]:
        if np.isfinite(scores[j]):
            print(f"{items[j]},{scores[j]:.9g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
