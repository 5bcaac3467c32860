#!/usr/bin/env python3
"""plot_scaling.py: draws a scaling study's figure from its scaling.csv.

  python3 launch/analysis/plot_scaling.py OUT/scaling.csv [-o OUT/scaling.png] [--title TEXT]

Left panel: speedup vs ranks (measured, and the ideal line N/N0). Right panel: final test NDCG@100
vs ranks (it should stay flat). Reads the columns written by launch/scaling_study.sh:
ranks, seconds_per_epoch, train_users_per_second, speedup, efficiency, test_ndcg@100, status.
Rows whose status is not "ok" or whose values are empty are skipped.

Needs matplotlib: `apt-get install python3-matplotlib` (Debian) or `pip install matplotlib`.
Exit status: 0 written, 1 matplotlib missing, 2 bad input.
"""

import argparse
import csv
import os
import sys

from pyplot_or_none import pyplot_or_none


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def read_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"ranks", "speedup"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        rows = []
        for row in reader:
            if row.get("status", "ok") not in ("ok", ""):
                continue
            ranks = number(row.get("ranks"))
            if ranks is None:
                continue
            rows.append({
                "ranks": int(ranks),
                "speedup": number(row.get("speedup")),
                "ndcg": number(row.get("test_ndcg@100")),
                "efficiency": number(row.get("efficiency")),
            })
    rows.sort(key=lambda r: r["ranks"])
    return rows


def main():
    ap = argparse.ArgumentParser(description="Plot speedup and NDCG@100 vs ranks from scaling.csv")
    ap.add_argument("csv", help="scaling.csv written by launch/scaling_study.sh")
    ap.add_argument("-o", "--output", help="PNG to write (default: scaling.png next to the CSV)")
    ap.add_argument("--title", default=None, help="figure title")
    args = ap.parse_args()

    try:
        rows = read_rows(args.csv)
    except (OSError, ValueError) as e:
        print(f"plot_scaling.py: {e}", file=sys.stderr)
        return 2
    if not rows:
        print(f"plot_scaling.py: {args.csv} has no successful runs to plot", file=sys.stderr)
        return 2
    output = args.output or os.path.join(os.path.dirname(os.path.abspath(args.csv)),
                                         "scaling.png")

    plt = pyplot_or_none("plot_scaling.py")
    if plt is None:
        return 1

    ranks = [r["ranks"] for r in rows]
    n0 = ranks[0]
    fig, (ax_speed, ax_ndcg) = plt.subplots(1, 2, figsize=(10, 4.2))

    measured = [(r["ranks"], r["speedup"]) for r in rows if r["speedup"] is not None]
    ideal_x = [ranks[0], ranks[-1]] if len(ranks) > 1 else [ranks[0], ranks[0] * 2]
    ax_speed.plot(ideal_x, [x / n0 for x in ideal_x], "--", color="grey", label="ideal (N/N0)")
    if measured:
        ax_speed.plot([m[0] for m in measured], [m[1] for m in measured], "o-", color="C0",
                      label="measured")
        for (x, y), r in zip(measured, [r for r in rows if r["speedup"] is not None]):
            if r["efficiency"] is not None:
                ax_speed.annotate(f"{100 * r['efficiency']:.0f}%", (x, y),
                                  textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax_speed.margins(x=0.1)
    ax_speed.set_xlabel("ranks")
    ax_speed.set_ylabel(f"speedup vs {n0} rank(s) (seconds per epoch)")
    ax_speed.set_title("speedup (labels: efficiency)")
    ax_speed.set_xticks(ranks)
    ax_speed.grid(True, alpha=0.3)
    ax_speed.legend(loc="upper left")

    ndcg = [(r["ranks"], r["ndcg"]) for r in rows if r["ndcg"] is not None]
    if ndcg:
        ax_ndcg.plot([p[0] for p in ndcg], [p[1] for p in ndcg], "s-", color="C1")
        lo = min(p[1] for p in ndcg)
        hi = max(p[1] for p in ndcg)
        pad = max(0.005, 0.5 * (hi - lo))  # show at least +-0.005, the project's tolerance
        ax_ndcg.set_ylim(lo - pad, hi + pad)
        ax_ndcg.axhspan(ndcg[0][1] - 0.002, ndcg[0][1] + 0.002, color="C1", alpha=0.12,
                        label=f"{n0}-rank value +-0.002")
        ax_ndcg.legend(loc="lower left")
    else:
        ax_ndcg.text(0.5, 0.5, "no test NDCG@100 recorded", ha="center", va="center",
                     transform=ax_ndcg.transAxes)
    ax_ndcg.margins(x=0.1)
    ax_ndcg.set_xlabel("ranks")
    ax_ndcg.set_ylabel("test NDCG@100 (best epoch)")
    ax_ndcg.set_title("quality across world sizes")
    ax_ndcg.set_xticks(ranks)
    ax_ndcg.grid(True, alpha=0.3)

    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"plot_scaling.py: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
