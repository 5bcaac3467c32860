#!/usr/bin/env python3
"""reference_step_bench.py: times one RecVAE training step the way the authors' reference
PyTorch code computes it, as a side-by-side baseline for recvae_dist / recvae_bench.

TIMING ONLY. This file mirrors the *computation* of the reference implementation (as described in
/work/shared/spec/recvae.md): per step it densifies the batch's CSR rows into a float tensor
(the reference does `torch.Tensor(csr[idx].toarray())`), runs a dense encoder built from nn.Linear
layers (fc1 is a dense I x 600 product), swish, LayerNorm(eps=0.1), dense skip connections,
mu/logvar heads, the composite prior with a frozen `encoder_old` copy evaluated on the same input,
a dense nn.Linear(200, I) decoder, log_softmax times the dense input, the KL term weighted by
gamma*|x_u|, loss.backward() and an Adam(lr=5e-4) step on either the encoder (dropout 0.5) or the
decoder (dropout 0). As in the reference, backward() always runs through the whole model (encoder
and decoder parameters both get gradients; only the optimiser that steps differs). It is written
from the spec, not copied, and is not meant to train anything: the data are synthetic and only a
few steps are run.

Data: synthetic "ML-20M shape" CSR: 116,677 training users x 20,108 items, log-normal user
activity with mean ~70 items (at least 5), Zipf item popularity. Validation: 2,000 more users whose
items are split 80% fold-in / 20% holdout; scored as the reference evaluates (dense fold-in batch,
forward in eval mode without torch.no_grad, fold-in items set to -inf, top 100) plus NDCG@100.

Usage:
  python3 launch/bench/reference_step_bench.py [--threads 1] [--steps 5] [--warmup 1]
      [--batch-size 500] [--users 116677] [--items 20108] [--mean-items 70] [--eval-users 2000] [--json FILE]

Needs Debian's python3-torch (1.13, `apt-get install -y python3-torch`) and python3-numpy;
python3-scipy is used when present (the reference holds its data as scipy CSR, float64). On
machines where `python3` is another interpreter (pyenv, venv) run it with /usr/bin/python3.
Leave OPENBLAS_CORETYPE as the environment sets it.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

try:
    import numpy as np
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("reference_step_bench.py: numpy missing: apt-get install -y python3-numpy "
             "(and run with /usr/bin/python3)")
try:
    from scipy import sparse  # the reference keeps its data as scipy CSR (float64)
except ImportError:  # pragma: no cover - numpy fallback below
    sparse = None
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    sys.exit("reference_step_bench.py: torch missing: apt-get install -y python3-torch "
             "(and run with /usr/bin/python3)")


# ----------------------------------------------------------------------------------------------
# Synthetic CSR data (numpy only: indptr / indices, values are implicitly 1)
# ----------------------------------------------------------------------------------------------
class Csr:
    """Minimal CSR matrix of implicit feedback (all stored values are 1)."""

    def __init__(self, indptr, indices, n_cols):
        self.indptr = indptr
        self.indices = indices
        self.n_rows = len(indptr) - 1
        self.n_cols = n_cols
        self._scipy = None

    @property
    def nnz(self):
        return int(self.indptr[-1])

    def to_scipy(self):
        """The same matrix as the reference holds it: scipy CSR with float64 ones."""
        if self._scipy is None and sparse is not None:
            self._scipy = sparse.csr_matrix(
                (np.ones(self.nnz, dtype=np.float64), self.indices, self.indptr),
                shape=(self.n_rows, self.n_cols))
        return self._scipy

    def dense_rows(self, rows):
        """Rows as a dense array: scipy's csr[rows].toarray() (float64) as in the reference, or
        an equivalent numpy densification (float32) when scipy is missing."""
        mat = self.to_scipy()
        if mat is not None:
            return mat[rows].toarray()
        out = np.zeros((len(rows), self.n_cols), dtype=np.float32)
        starts = self.indptr[rows]
        ends = self.indptr[rows + 1]
        lengths = ends - starts
        row_ids = np.repeat(np.arange(len(rows)), lengths)
        cols = np.concatenate([self.indices[s:e] for s, e in zip(starts, ends)]) \
            if len(rows) else np.empty(0, dtype=self.indices.dtype)
        out[row_ids, cols] = 1.0
        return out


def make_synthetic(n_users, n_items, mean_items, rng, zipf_a=1.0, sigma=1.0):
    """Users' item sets: log-normal sizes (mean ~mean_items, >= 5), Zipf item popularity."""
    mu = math.log(mean_items) - 0.5 * sigma * sigma
    sizes = np.clip(np.rint(rng.lognormal(mu, sigma, n_users)), 5, n_items // 2).astype(np.int64)
    popularity = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** zipf_a
    popularity /= popularity.sum()
    item_of_rank = rng.permutation(n_items)  # popular items are not the low ids
    # Over-draw by 100%, then deduplicate per user and cut each user back to its size.
    draws = np.rint(sizes * 2.0).astype(np.int64) + 2
    users = np.repeat(np.arange(n_users, dtype=np.int64), draws)
    items = item_of_rank[rng.choice(n_items, size=int(draws.sum()), p=popularity)]
    keys = np.unique(users * n_items + items)  # sorted by user, then item; duplicates gone
    users = keys // n_items
    items = keys % n_items
    # Keep a random subset of at most sizes[u] items per user (random order within each user).
    order = np.lexsort((rng.random(len(keys)), users))
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=n_users)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank_in_user = np.arange(len(users)) - first[users]
    keep = rank_in_user < sizes[users]
    users, items = users[keep], items[keep]
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=n_users)
    indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return Csr(indptr, items.astype(np.int64), n_items)


def split_holdout(csr, frac, rng):
    """Per user: a random floor(frac*n) of the items is the holdout, the rest the fold-in."""
    fold_rows, hold_rows = [], []
    for u in range(csr.n_rows):
        items = csr.indices[csr.indptr[u]:csr.indptr[u + 1]]
        n_hold = int(math.floor(frac * len(items))) if len(items) >= 5 else 0
        perm = rng.permutation(len(items))
        hold_rows.append(np.sort(items[perm[:n_hold]]))
        fold_rows.append(np.sort(items[perm[n_hold:]]))

    def to_csr(rows):
        indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int64)
        return Csr(indptr, np.concatenate(rows).astype(np.int64), csr.n_cols)

    return to_csr(fold_rows), to_csr(hold_rows)


# ----------------------------------------------------------------------------------------------
# The model, computed as the reference code computes it
# ----------------------------------------------------------------------------------------------
LOG_2PI = math.log(2.0 * math.pi)


def swish(x):
    return x.mul(torch.sigmoid(x))


def log_norm_pdf(x, mu, logvar):
    return -0.5 * (logvar + LOG_2PI + (x - mu).pow(2) / logvar.exp())


class Encoder(nn.Module):
    def __init__(self, hidden_dim, latent_dim, input_dim, eps=1e-1):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)  # dense I x H product on a dense input
        self.ln1 = nn.LayerNorm(hidden_dim, eps=eps)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.ln2 = nn.LayerNorm(hidden_dim, eps=eps)
        self.fc3 = nn.Linear(hidden_dim, hidden_dim)
        self.ln3 = nn.LayerNorm(hidden_dim, eps=eps)
        self.fc4 = nn.Linear(hidden_dim, hidden_dim)
        self.ln4 = nn.LayerNorm(hidden_dim, eps=eps)
        self.fc5 = nn.Linear(hidden_dim, hidden_dim)
        self.ln5 = nn.LayerNorm(hidden_dim, eps=eps)
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x, dropout_rate):
        norm = x.pow(2).sum(dim=-1).sqrt()
        x = x / norm[:, None]
        x = F.dropout(x, p=dropout_rate, training=self.training)
        h1 = self.ln1(swish(self.fc1(x)))
        h2 = self.ln2(swish(self.fc2(h1) + h1))
        h3 = self.ln3(swish(self.fc3(h2) + h1 + h2))
        h4 = self.ln4(swish(self.fc4(h3) + h1 + h2 + h3))
        h5 = self.ln5(swish(self.fc5(h4) + h1 + h2 + h3 + h4))
        return self.fc_mu(h5), self.fc_logvar(h5)


class CompositePrior(nn.Module):
    def __init__(self, hidden_dim, latent_dim, input_dim, weights=(3 / 20, 3 / 4, 1 / 10)):
        super().__init__()
        self.weights = weights
        self.mu_prior = nn.Parameter(torch.zeros(1, latent_dim), requires_grad=False)
        self.logvar_prior = nn.Parameter(torch.zeros(1, latent_dim), requires_grad=False)
        self.logvar_uniform_prior = nn.Parameter(torch.full((1, latent_dim), 10.0),
                                                 requires_grad=False)
        self.encoder_old = Encoder(hidden_dim, latent_dim, input_dim)
        self.encoder_old.requires_grad_(False)

    def forward(self, x, z):
        post_mu, post_logvar = self.encoder_old(x, 0)
        stnd = log_norm_pdf(z, self.mu_prior, self.logvar_prior)
        post = log_norm_pdf(z, post_mu, post_logvar)
        unif = log_norm_pdf(z, self.mu_prior, self.logvar_uniform_prior)
        comps = [g.add(math.log(w)) for g, w in zip((stnd, post, unif), self.weights)]
        return torch.logsumexp(torch.stack(comps, dim=-1), dim=-1)


class VAE(nn.Module):
    def __init__(self, hidden_dim, latent_dim, input_dim):
        super().__init__()
        self.encoder = Encoder(hidden_dim, latent_dim, input_dim)
        self.prior = CompositePrior(hidden_dim, latent_dim, input_dim)
        self.decoder = nn.Linear(latent_dim, input_dim)

    def reparameterize(self, mu, logvar):
        if self.training:
            std = torch.exp(0.5 * logvar)
            return torch.randn_like(std).mul(std).add_(mu)
        return mu

    def forward(self, ratings, gamma=0.005, dropout_rate=0.5, calculate_loss=True):
        mu, logvar = self.encoder(ratings, dropout_rate=dropout_rate)
        z = self.reparameterize(mu, logvar)
        x_pred = self.decoder(z)
        if not calculate_loss:
            return x_pred
        kl_weight = gamma * ratings.sum(dim=-1)
        mll = (F.log_softmax(x_pred, dim=-1) * ratings).sum(dim=-1).mean()
        kld = (log_norm_pdf(z, mu, logvar) - self.prior(ratings, z)).sum(dim=-1) \
            .mul(kl_weight).mean()
        return (mll, kld), -(mll - kld)

    def update_prior(self):
        self.prior.encoder_old.load_state_dict(self.encoder.state_dict())


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
def time_phase(model, optimizer, data, batch_size, dropout, n_warmup, n_steps, rng):
    """Runs warmup + timed steps of the reference batch loop; returns per-step seconds."""
    model.train()
    order = rng.permutation(data.n_rows)  # reshuffled every pass, as the reference does
    times = []
    for step in range(n_warmup + n_steps):
        start = (step * batch_size) % max(1, data.n_rows - batch_size + 1)
        rows = order[start:start + batch_size]
        t0 = time.perf_counter()
        ratings = torch.Tensor(data.dense_rows(rows))  # scipy rows -> dense -> (device)
        optimizer.zero_grad()
        _, loss = model(ratings, gamma=0.005, dropout_rate=dropout)
        loss.backward()
        optimizer.step()
        dt = time.perf_counter() - t0
        if not math.isfinite(loss.item()):
            raise RuntimeError("non-finite loss in the benchmark step")
        if step >= n_warmup:
            times.append(dt)
    return times


def ndcg_at_k(top_idx, holdout_rows, k):
    scores = []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for u, items in enumerate(holdout_rows):
        if len(items) == 0:
            continue
        hits = np.isin(top_idx[u, :k], items)
        dcg = float((hits * discounts).sum())
        idcg = float(discounts[:min(k, len(items))].sum())
        scores.append(dcg / idcg)
    return scores


def time_validation(model, fold_in, holdout, batch_size, k=100, n_users=None):
    """Reference-style scoring: dense fold-in, eval forward, fold-in -> -inf, top k, NDCG@k."""
    model.eval()
    n_users = fold_in.n_rows if n_users is None else min(n_users, fold_in.n_rows)
    t0 = time.perf_counter()
    scores = []
    for begin in range(0, n_users, batch_size):
        rows = np.arange(begin, min(begin + batch_size, n_users))
        dense_in = fold_in.dense_rows(rows)
        ratings_in = torch.Tensor(dense_in)
        pred = model(ratings_in, calculate_loss=False)  # the reference does not use no_grad
        pred = pred.detach()
        pred[torch.from_numpy(dense_in > 0)] = -float("inf")
        top = torch.topk(pred, k, dim=1).indices.numpy()
        hold = [holdout.indices[holdout.indptr[r]:holdout.indptr[r + 1]] for r in rows]
        scores.extend(ndcg_at_k(top, hold, k))
    seconds = time.perf_counter() - t0
    return seconds, (float(np.mean(scores)) if scores else float("nan"))


def main():
    ap = argparse.ArgumentParser(
        description="Times reference-style RecVAE encoder/decoder steps (PyTorch, dense input).")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per phase (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per phase (default 1)")
    ap.add_argument("--batch-size", type=int, default=500, help="users per step (default 500)")
    ap.add_argument("--users", type=int, default=116677, help="training users (default 116677)")
    ap.add_argument("--items", type=int, default=20108, help="items (default 20108)")
    ap.add_argument("--mean-items", type=float, default=70.0,
                    help="mean items per user (default 70)")
    ap.add_argument("--eval-users", type=int, default=2000,
                    help="validation users to score (default 2000)")
    ap.add_argument("--hidden", type=int, default=600, help="hidden width (default 600)")
    ap.add_argument("--latent", type=int, default=200, help="latent width (default 200)")
    ap.add_argument("--seed", type=int, default=1337, help="seed (default 1337)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = ap.parse_args()
    if min(args.threads, args.steps, args.batch_size, args.users, args.items) < 1 \
            or args.warmup < 0 or args.eval_users < 0 or args.mean_items < 1:
        ap.error("counts must be positive")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    t0 = time.perf_counter()
    train = make_synthetic(args.users, args.items, args.mean_items, rng)
    valid_full = make_synthetic(max(args.eval_users, 1), args.items, args.mean_items, rng)
    fold_in, holdout = split_holdout(valid_full, 0.2, rng)
    gen_seconds = time.perf_counter() - t0
    print(f"data: {train.n_rows} train users x {train.n_cols} items, {train.nnz} interactions "
          f"({train.nnz / train.n_rows:.1f} per user); {args.eval_users} validation users; "
          f"generated in {gen_seconds:.1f} s", flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch "
          f"{args.batch_size}, {args.warmup} warmup + {args.steps} timed steps per phase",
          flush=True)

    model = VAE(args.hidden, args.latent, args.items)
    opt_encoder = torch.optim.Adam(model.encoder.parameters(), lr=5e-4)
    opt_decoder = torch.optim.Adam(model.decoder.parameters(), lr=5e-4)

    enc = time_phase(model, opt_encoder, train, args.batch_size, 0.5, args.warmup, args.steps, rng)
    model.update_prior()  # encoder_old <- encoder after the encoder phase, as in an epoch
    dec = time_phase(model, opt_decoder, train, args.batch_size, 0.0, args.warmup, args.steps, rng)
    eval_users = fold_in.n_rows if args.eval_users > 0 else 0
    if eval_users:
        # One untimed batch first, so allocation warm-up does not count.
        time_validation(model, fold_in, holdout, args.batch_size, n_users=1)
        val_seconds, val_ndcg = time_validation(model, fold_in, holdout, args.batch_size)
    else:
        val_seconds, val_ndcg = float("nan"), float("nan")

    enc_ms = statistics.median(enc) * 1e3
    dec_ms = statistics.median(dec) * 1e3
    steps_per_pass = math.ceil(args.users / args.batch_size)
    epoch_est = steps_per_pass * (3 * enc_ms + dec_ms) / 1e3
    users_per_s = eval_users / val_seconds if eval_users else float("nan")
    print(f"encoder step: {enc_ms:.1f} ms median (steps: "
          f"{', '.join(f'{t * 1e3:.0f}' for t in enc)} ms)")
    print(f"decoder step: {dec_ms:.1f} ms median (steps: "
          f"{', '.join(f'{t * 1e3:.0f}' for t in dec)} ms)")
    print(f"training users/s: encoder {args.batch_size / (enc_ms / 1e3):.0f}, decoder "
          f"{args.batch_size / (dec_ms / 1e3):.0f}")
    if eval_users:
        print(f"validation: {eval_users} users in {val_seconds:.2f} s = {users_per_s:.0f} users/s "
              f"(ndcg@100 {val_ndcg:.4f} of an untrained model on random data)")
    print(f"estimated epoch without validation ({steps_per_pass} steps/pass, 3 enc + 1 dec pass): "
          f"{epoch_est:.0f} s")

    if args.json:
        result = {
            "benchmark": "reference_step_bench",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "machine": platform.machine(),
            "users": args.users,
            "items": args.items,
            "interactions": train.nnz,
            "batch_size": args.batch_size,
            "warmup": args.warmup,
            "steps": args.steps,
            "encoder_step_ms": enc_ms,
            "decoder_step_ms": dec_ms,
            "encoder_step_ms_all": [t * 1e3 for t in enc],
            "decoder_step_ms_all": [t * 1e3 for t in dec],
            "validation_users": eval_users,
            "validation_seconds": val_seconds,
            "validation_users_per_second": users_per_s,
            "estimated_epoch_train_seconds": epoch_est,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
