#!/usr/bin/env python3
"""scaling_model.py: predicts step time, epoch time and efficiency of data-parallel training at
N = 1..64 ranks from figures measured at one rank and a link's fitted collective cost.

    python3 launch/analysis/scaling_model.py \\
        --bench b500.json [--bench b250.json ...]        # recvae_bench --json at 1 rank (batch sizes)
        --link 1gbit=coll_1g.json [--link 10gbit=...]     # recvae_bench --collectives --json on a link
        [--assume-link 100gbit=12.5,5 ...]                # NAME=GB/s,latency_us for links not measured
        [--validate 1gbit=np2.json ...]                   # recvae_bench --json measured at N ranks on LINK
        [--cores C] [--gpu-speedup S] --out DIR

The model (docs/performance.md, "Scaling model"):
  * compute, other: per step, linear in the local batch L = B / N, fitted over the --bench files
    (one file: proportional through zero for compute, constant for other);
  * optimizer: the 1-rank figure, divided by N with dist.optimizer: sharded;
  * communication: ring collectives, each (N-1) * latency + (N-1)/N * bytes / bandwidth per pass
    over the ring (an all-reduce is two: a reduce-scatter and an all-gather); latency and
    bandwidth are fitted by least squares to the --link measurements;
  * --cores C: ranks x threads beyond C cores share them (compute, other and optimizer scale by
    N * threads / C), which is what emulated nodes on one host do;
  * epoch = steps per pass x sum over the schedule's passes of the step time + evaluation / N.
Writes DIR/prediction.csv, DIR/validation.md (prediction beside measurement) and
DIR/scaling_prediction.png (strong and weak scaling per link).
"""
import argparse
import csv
import json
import math
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def fit_line(xs, ys, through_zero):
    """Least-squares a + b x (a = 0 when through_zero or a single point)."""
    if len(xs) == 1 or through_zero:
        b = sum(x * y for x, y in zip(xs, ys)) / max(sum(x * x for x in xs), 1e-30)
        return 0.0, b
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(sxx, 1e-30)
    return my - b * mx, b


class Shape:
    """One model on one data shape, from recvae_bench --json figures at 1 rank."""

    def __init__(self, benches):
        for b in benches:
            if b["world_size"] != 1:
                sys.exit("scaling_model.py: --bench files must be measured at 1 rank (%s has %d)"
                         % (b.get("data"), b["world_size"]))
        first = benches[0]
        self.schedule = first["schedule"].split(",")
        self.train_users = first["train_users"]
        self.batch = first["batch_size"]
        self.eval_seconds = first.get("eval_seconds", 0.0)
        self.threads = first.get("threads_per_rank", 1)
        self.phases = {}
        for phase in sorted(set(self.schedule)):
            key = phase + "_breakdown"
            bs = [b["batch_size"] for b in benches]
            comp = [b[key]["compute_seconds"] for b in benches]
            other = [b[key]["other_seconds"] for b in benches]
            opt = [b[key]["optimizer_seconds"] for b in benches]
            self.phases[phase] = {
                "compute": fit_line(bs, comp, through_zero=len(bs) == 1),
                "other": fit_line(bs, other, through_zero=False) if len(bs) > 1 else (other[0], 0.0),
                "optimizer": sum(opt) / len(opt),
                "grad_bytes": first["allreduce_bytes_%s_step" % phase],
            }

    def step(self, phase, n, batch, link, sharded, wire_bytes=4, cores=None, gpu_speedup=1.0):
        p = self.phases[phase]
        local = batch / n
        share = max(1.0, n * self.threads / cores) if cores else 1.0
        compute = (p["compute"][0] + p["compute"][1] * local) * share / gpu_speedup
        other = max(0.0, p["other"][0] + p["other"][1] * local) * share / gpu_speedup
        optimizer = p["optimizer"] / (n if sharded else 1) * share / gpu_speedup
        grad = p["grad_bytes"]
        comm = 0.0
        if n > 1:
            reduce_bytes = grad * wire_bytes / 4
            # A ring all-reduce is a reduce-scatter and an all-gather of the wire type; the sharded
            # step all-gathers fp32 parameters instead.
            comm = link.ring(n, reduce_bytes) + link.ring(n, grad if sharded else reduce_bytes)
        return {"compute": compute, "other": other, "optimizer": optimizer, "comm": comm,
                "total": compute + other + optimizer + comm}

    def epoch(self, n, batch, link, sharded, **kw):
        steps = math.ceil(self.train_users / batch)
        share = max(1.0, n * self.threads / kw["cores"]) if kw.get("cores") else 1.0
        train = sum(steps * self.step(ph, n, batch, link, sharded, **kw)["total"] for ph in self.schedule)
        return train + self.eval_seconds * share / n / kw.get("gpu_speedup", 1.0)


class Link:
    """Ring collective cost: (N-1) latency + (N-1)/N bytes / bandwidth per reduce-scatter or all-gather."""

    def __init__(self, name, latency, bandwidth, measured=False):
        self.name, self.latency, self.bandwidth, self.measured = name, latency, bandwidth, measured

    def ring(self, n, nbytes):
        return (n - 1) * self.latency + (n - 1) / n * nbytes / self.bandwidth

    @staticmethod
    def fit(name, coll):
        """Least squares over every measured collective: t = k * latency + w / bandwidth."""
        n = coll["world_size"]
        if n < 2:
            sys.exit("scaling_model.py: --link %s: collectives measured at 1 rank say nothing of a link" % name)
        rows = []
        for r in coll["collectives"]:
            s = r["bytes"]
            rows.append((2 * (n - 1), 2 * (n - 1) / n * s, r["allreduce_seconds"]))
            rows.append((n - 1, (n - 1) / n * s, r["reduce_scatter_seconds"]))
            rows.append((n - 1, (n - 1) / n * s, r["allgather_seconds"]))
        # Normal equations of t = k a + w c (a latency, c = 1/bandwidth), weighted by 1/t so that
        # small and large messages count alike (relative error).
        skk = skw = sww = skt = swt = 0.0
        for k, w, t in rows:
            wt = 1.0 / max(t, 1e-9) ** 2
            skk += wt * k * k
            skw += wt * k * w
            sww += wt * w * w
            skt += wt * k * t
            swt += wt * w * t
        det = skk * sww - skw * skw
        a = (skt * sww - swt * skw) / det
        c = (skk * swt - skw * skt) / det
        return Link(name, max(a, 0.0), 1.0 / max(c, 1e-15), measured=True)


def parse_assumed(text):
    name, rest = text.split("=", 1)
    gbytes, lat_us = rest.split(",")
    return Link(name, float(lat_us) * 1e-6, float(gbytes) * 1e9)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="append", required=True, help="recvae_bench --json at 1 rank (repeatable)")
    ap.add_argument("--link", action="append", default=[], help="NAME=collectives.json (repeatable)")
    ap.add_argument("--assume-link", action="append", default=[], help="NAME=GB/s,latency_us (repeatable)")
    ap.add_argument("--validate", action="append", default=[], help="LINK=bench.json measured at N ranks")
    ap.add_argument("--cores", type=float, default=None, help="cores shared by all ranks (emulated nodes)")
    ap.add_argument("--gpu-speedup", type=float, default=1.0,
                    help="assumed GPU speed-up of compute/other/optimizer over the measured figures")
    ap.add_argument("--max-ranks", type=int, default=64)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    shape = Shape([load(p) for p in args.bench])
    links = {}
    for spec in args.link:
        name, path = spec.split("=", 1)
        links[name] = Link.fit(name, load(path))
    for spec in args.assume_link:
        link = parse_assumed(spec)
        links[link.name] = link
    os.makedirs(args.out, exist_ok=True)
    for l in links.values():
        print("link %-10s latency %8.1f us, bandwidth %8.3f GB/s (%s)"
              % (l.name, l.latency * 1e6, l.bandwidth / 1e9, "fitted" if l.measured else "assumed"))

    # Validation: each measured N-rank bench beside the prediction for its link and settings.
    rows = []
    for spec in args.validate:
        name, path = spec.split("=", 1)
        m = load(path)
        if name not in links:
            sys.exit("scaling_model.py: --validate %s: no --link or --assume-link named %s" % (path, name))
        n = m["world_size"]
        sharded = m.get("optimizer", "replicated") == "sharded"
        wire = 2 if m.get("grad_dtype") == "bf16" else 4
        kw = {"cores": args.cores}
        for phase in sorted(set(shape.schedule)):
            pred = shape.step(phase, n, m["batch_size"], links[name], sharded, wire, **kw)["total"] * 1e3
            meas = m["%s_step_ms" % phase]
            rows.append((name, n, m.get("optimizer", "?"), m.get("grad_dtype", "fp32"), phase + " step (ms)",
                         meas, pred, (pred - meas) / meas))
        pred = shape.epoch(n, m["batch_size"], links[name], sharded, wire_bytes=wire, **kw)
        meas = m["epoch_seconds_estimated"]
        rows.append((name, n, m.get("optimizer", "?"), m.get("grad_dtype", "fp32"), "epoch (s)", meas, pred,
                     (pred - meas) / meas))
    if rows:
        with open(os.path.join(args.out, "validation.md"), "w") as f:
            f.write("| link | ranks | optimizer | wire | figure | measured | predicted | error |\n")
            f.write("|---|---|---|---|---|---|---|---|\n")
            for r in rows:
                f.write("| %s | %d | %s | %s | %s | %.1f | %.1f | %+.1f%% |\n" % (r[:5] + (r[5], r[6], 100 * r[7])))
        worst = max(abs(r[7]) for r in rows)
        print(open(os.path.join(args.out, "validation.md")).read())
        print("worst prediction error: %.1f%%" % (100 * worst))

    # Predictions for N = 1, 2, 4, ... max-ranks: strong scaling (the global batch of the bench)
    # and weak scaling (the bench's batch per rank), replicated and sharded.
    ns = [1]
    while ns[-1] * 2 <= args.max_ranks:
        ns.append(ns[-1] * 2)
    pred_rows = []
    for name, link in links.items():
        for sharded in (False, True):
            base = shape.epoch(1, shape.batch, link, sharded, cores=None, gpu_speedup=args.gpu_speedup)
            for n in ns:
                strong = shape.epoch(n, shape.batch, link, sharded, cores=None, gpu_speedup=args.gpu_speedup)
                weak_batch = shape.batch * n
                weak = shape.epoch(n, weak_batch, link, sharded, cores=None, gpu_speedup=args.gpu_speedup)
                # Weak scaling efficiency: the work per step grows with N, so compare users/s.
                weak_eff = (shape.train_users / weak) / (n * shape.train_users / base)
                pred_rows.append({"link": name, "optimizer": "sharded" if sharded else "replicated", "ranks": n,
                                  "strong_epoch_s": strong, "strong_speedup": base / strong,
                                  "strong_efficiency": base / strong / n, "weak_epoch_s": weak,
                                  "weak_efficiency": weak_eff})
    with open(os.path.join(args.out, "prediction.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(pred_rows[0].keys()))
        w.writeheader()
        for r in pred_rows:
            w.writerow({k: ("%.4g" % v if isinstance(v, float) else v) for k, v in r.items()})
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("scaling_model.py: no matplotlib; wrote prediction.csv only")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in links:
        for opt, style in (("replicated", "--"), ("sharded", "-")):
            rs = [r for r in pred_rows if r["link"] == name and r["optimizer"] == opt]
            axes[0].plot([r["ranks"] for r in rs], [r["strong_speedup"] for r in rs], style, marker="o",
                         label="%s, %s" % (name, opt))
            axes[1].plot([r["ranks"] for r in rs], [r["weak_efficiency"] for r in rs], style, marker="o",
                         label="%s, %s" % (name, opt))
    axes[0].plot(ns, ns, ":", color="grey", label="ideal")
    for ax, title in ((axes[0], "strong scaling: speed-up at global batch %d" % shape.batch),
                      (axes[1], "weak scaling: efficiency at %d users per rank" % shape.batch)):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("ranks")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log", base=2)
    axes[1].set_ylim(0, 1.05)
    axes[1].legend(fontsize=7)
    note = "compute: measured at 1 rank" + (", divided by an assumed GPU speed-up of %g" % args.gpu_speedup
                                            if args.gpu_speedup != 1 else "")
    fig.suptitle("%s, %d users x batch %d; %s" % (",".join(sorted(set(shape.schedule))), shape.train_users,
                                                   shape.batch, note), fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "scaling_prediction.png"), dpi=110)
    print("wrote %s" % os.path.join(args.out, "scaling_prediction.png"))


if __name__ == "__main__":
    main()
