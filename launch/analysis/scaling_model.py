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
  * communication: ring collectives, each (N-1) * latency + (N-1)/N * bytes / bandwidth (an
    all-reduce is two: a reduce-scatter and an all-gather; so is a sharded step); latency from the
    smallest and bandwidth from the largest messages of the --link measurements, per world size
    measured (the nearest one for others);
  * --cores C: ranks x threads beyond C cores share them (compute, other and optimizer scale by
    N * threads / C), which is what emulated nodes on one host do; --contention FILE (a 2-rank
    shared-memory bench) adds the slow-down of ranks sharing one host's memory, per phase;
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

from pyplot_or_none import pyplot_or_none


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
        self.contention = {}
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

    def share(self, phase, n, cores):
        """How much slower a rank computes than alone: ranks beyond the cores time-share them, and
        ranks on one host contend for its memory bandwidth (the --contention factor, per phase)."""
        if not cores or n < 2:
            return 1.0
        return max(1.0, n * self.threads / cores) * self.contention.get(phase, 1.0)

    def calibrate_contention(self, shared):
        """Per phase: compute at 2 ranks of one host (recvae_bench --json, shared memory) against
        the 1-rank line at the same local batch."""
        n = shared["world_size"]
        for phase, p in self.phases.items():
            alone = p["compute"][0] + p["compute"][1] * shared["batch_size"] / n
            self.contention[phase] = shared[phase + "_breakdown"]["compute_seconds"] / alone
        self.contention["evaluation"] = 1.0

    def step(self, phase, n, batch, link, sharded, wire_bytes=4, cores=None, gpu_speedup=1.0):
        p = self.phases[phase]
        local = batch / n
        share = self.share(phase, n, cores)
        compute = (p["compute"][0] + p["compute"][1] * local) * share / gpu_speedup
        other = max(0.0, p["other"][0] + p["other"][1] * local) * share / gpu_speedup
        optimizer = p["optimizer"] / (n if sharded else 1) * share / gpu_speedup
        grad = p["grad_bytes"]
        comm = 0.0
        if n > 1:
            # A ring all-reduce is a reduce-scatter and an all-gather of the wire type; a sharded
            # step reduce-scatters the gradients and all-gathers the parameters (fp32) or their
            # updates (bf16): the same bytes.
            wire = grad * wire_bytes / 4
            comm = 2 * link.ring(n, wire, "ring" if sharded else "allreduce")
        return {"compute": compute, "other": other, "optimizer": optimizer, "comm": comm,
                "total": compute + other + optimizer + comm}

    def epoch(self, n, batch, link, sharded, **kw):
        steps = math.ceil(self.train_users / batch)
        share = self.share("evaluation", n, kw.get("cores"))
        train = sum(steps * self.step(ph, n, batch, link, sharded, **kw)["total"] for ph in self.schedule)
        return train + self.eval_seconds * share / n / kw.get("gpu_speedup", 1.0)


class Link:
    """Collective cost on a link: (N-1) latency + (N-1)/N bytes / bandwidth per reduce-scatter or
    all-gather (a ring), fitted per world size measured and per kind: "ring" (the trainer's own
    ring reduce-scatter and MPI's all-gather, what a sharded step issues) and "allreduce" (MPI's
    all-reduce, what a replicated step issues; modelled as two ring passes, but MPI picks its own
    algorithm, so it gets its own fit). On emulated nodes the host's cores are shared, so the cost
    depends on N; an unmeasured N uses the nearest measured one. An assumed link has one fit."""

    def __init__(self, name, latency=None, bandwidth=None):
        self.name = name
        self.fits = {}  # (world size, kind) -> (latency s, bandwidth B/s)
        self.assumed = latency is not None
        if self.assumed:
            self.fits[(0, "ring")] = self.fits[(0, "allreduce")] = (latency, bandwidth)

    def cost(self, n, kind):
        if self.assumed:
            return self.fits[(0, kind)]
        sizes = sorted({m for m, k in self.fits if k == kind})
        near = min(sizes, key=lambda m: (abs(m - n), m))
        return self.fits[(near, kind)]

    def ring(self, n, nbytes, kind="ring"):
        """One ring pass (a reduce-scatter or an all-gather) of a buffer of nbytes."""
        latency, bandwidth = self.cost(n, kind)
        return (n - 1) * latency + (n - 1) / n * nbytes / bandwidth

    def add_measurement(self, coll):
        """Latency: the median of the smallest messages (<= 64 KB), per hop; bandwidth: the median
        of the large ones (>= 1 MB), bytes each rank sends over the time left after the latency."""
        n = coll["world_size"]
        if n < 2:
            sys.exit("scaling_model.py: --link %s: collectives measured at 1 rank say nothing of a link" % self.name)
        rows = {"allreduce": [], "ring": []}
        for r in coll["collectives"]:
            s = r["bytes"]
            rows["allreduce"].append((2 * (n - 1), 2 * (n - 1) / n * s, r["allreduce_seconds"], s))
            rows["ring"].append((n - 1, (n - 1) / n * s, r["reduce_scatter_seconds"], s))
            rows["ring"].append((n - 1, (n - 1) / n * s, r["allgather_seconds"], s))
        for kind, rs in rows.items():
            small = sorted(t / k for k, w, t, s in rs if s <= 65536)
            latency = small[len(small) // 2] if small else 0.0
            # The median of the large messages' bandwidths: one slow repetition of a 64 MB
            # transfer (a TCP window collapsing under the shaper) must not set the fit.
            rates = sorted(w / max(t - k * latency, 1e-12) for k, w, t, s in rs if s >= 1 << 20)
            self.fits[(n, kind)] = (latency, rates[len(rates) // 2])


def parse_assumed(text):
    name, rest = text.split("=", 1)
    gbytes, lat_us = rest.split(",")
    return Link(name, latency=float(lat_us) * 1e-6, bandwidth=float(gbytes) * 1e9)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="append", required=True, help="recvae_bench --json at 1 rank (repeatable)")
    ap.add_argument("--link", action="append", default=[], help="NAME=collectives.json (repeatable)")
    ap.add_argument("--assume-link", action="append", default=[], help="NAME=GB/s,latency_us (repeatable)")
    ap.add_argument("--validate", action="append", default=[], help="LINK=bench.json measured at N ranks")
    ap.add_argument("--cores", type=float, default=None, help="cores shared by all ranks (emulated nodes)")
    ap.add_argument("--contention", default=None,
                    help="recvae_bench --json at 2 ranks on one host: compute slow-down of ranks sharing it (with --cores)")
    ap.add_argument("--gpu-speedup", type=float, default=1.0,
                    help="assumed GPU speed-up of compute/other/optimizer over the measured figures")
    ap.add_argument("--max-ranks", type=int, default=64)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    shape = Shape([load(p) for p in args.bench])
    if args.contention:
        shape.calibrate_contention(load(args.contention))
        print("contention (compute at 2 ranks of one host / alone): " +
              ", ".join("%s %.2f" % kv for kv in sorted(shape.contention.items())))
    links = {}
    for spec in args.link:
        name, path = spec.split("=", 1)
        links.setdefault(name, Link(name)).add_measurement(load(path))
    for spec in args.assume_link:
        link = parse_assumed(spec)
        links[link.name] = link
    os.makedirs(args.out, exist_ok=True)
    for l in links.values():
        for (n, kind), (lat, bw) in sorted(l.fits.items()):
            print("link %-10s %-9s %s latency %8.1f us, bandwidth %8.3f GB/s" % (
                l.name, kind, "assumed:        " if l.assumed else "fitted at N=%-3d" % n, lat * 1e6, bw / 1e9))

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
    plt = pyplot_or_none("scaling_model.py", "scaling_prediction.png not drawn (prediction.csv is written)")
    if plt is None:
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
    axes[1].set_ylim(0, max(1.05, max(r["weak_efficiency"] for r in pred_rows) + 0.05))
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
