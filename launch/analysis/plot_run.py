#!/usr/bin/env python3
"""plot_run.py: draws the learning curves of one run from its metrics.jsonl.

  python3 launch/analysis/plot_run.py RUN_DIR [-o RUN_DIR/curves.png] [--title TEXT]

RUN_DIR is a run directory (output.dir) of recvae_dist; a path to a metrics.jsonl works too.
First panel: validation NDCG@100, Recall@20 and Recall@50 per epoch, the best epoch of final.json
(when there is one) marked, and the popularity baseline's validation NDCG@100 as a dotted line.
Then one panel per training phase that the records carry, with every numeric term of that phase
per epoch (loss, mll, kl, critic_mse, ...; its seconds and step counts are left out, and so are
terms that are zero throughout). The phases differ by model: RecVAE `encoder` and `decoder`,
Mult-VAE / Mult-DAE / CDAE / AutoRec `joint`, RaCT `joint` (actor pre-training), `critic_features`,
`critic`, `actor_critic`, WMF / PMF `model` (the ALS objective). EASE and SLIM have one record per
fitted hyper-parameter value (`fit`) and no loss: only the first panel, one point per fit. A phase
term more than 100x smaller than the largest of its phase is drawn on a second (right) y axis.

Needs matplotlib (Agg backend, no display): `apt-get install python3-matplotlib` (Debian) or
`pip install matplotlib`.
Exit status: 0 written, 1 matplotlib missing, 2 bad input (missing, empty or corrupt
metrics.jsonl, unwritable output; one line on stderr).
"""

import argparse
import json
import math
import os
import sys

from pyplot_or_none import pyplot_or_none

VALIDATION_METRICS = [("ndcg@100", "NDCG@100", "-"), ("recall@20", "Recall@20", "--"),
                      ("recall@50", "Recall@50", ":")]
# Fields of a phase that are bookkeeping, not loss terms.
SKIPPED_TERMS = {"seconds", "steps", "users"}
# Panel order of the phases known today (in the order they run); others follow as they appear.
PHASE_ORDER = ["encoder", "decoder", "joint", "critic_features", "critic", "actor_critic", "model"]


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_records(path):
    """The epoch records of a metrics.jsonl; ValueError with a one-line reason when unusable."""
    if not os.path.isfile(path):
        raise ValueError(f"{path} not found (not a run directory of recvae_dist?)")
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {n} is not JSON ({e.msg} at column {e.colno})")
            if not isinstance(rec, dict):
                raise ValueError(f"{path}: line {n} is not a JSON object")
            if not is_number(rec.get("epoch")):
                raise ValueError(f"{path}: line {n} has no numeric \"epoch\"")
            records.append(rec)
    if not records:
        raise ValueError(f"{path} is empty (no epoch has finished yet?)")
    return records


def read_json(path):
    """final.json or None (missing or unreadable: it is optional here)."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


def model_from_config(path):
    """model.type from a resolved config.yaml (block style, as recvae_dist writes it)."""
    try:
        with open(path, encoding="utf-8") as f:
            section = None
            for line in f:
                if line[:1] not in (" ", "\t", "#", "\n", ""):
                    section = line.split(":", 1)[0].strip()
                elif section == "model" and line.strip().startswith("type:"):
                    return line.split(":", 1)[1].split("#", 1)[0].strip().strip("\"'")
    except OSError:
        pass
    return None


def phases_of(records):
    """{phase: {term: [(x index, value)]}} in order of first appearance, zero-only terms dropped."""
    phases = {}
    for i, rec in enumerate(records):
        for key, value in rec.items():
            if key == "validation" or not isinstance(value, dict):
                continue
            terms = phases.setdefault(key, {})
            for term, v in value.items():
                if term in SKIPPED_TERMS or term.endswith("_seconds") or not is_number(v):
                    continue
                terms.setdefault(term, []).append((i, float(v)))
    out = {}
    order = sorted(phases, key=lambda p: PHASE_ORDER.index(p) if p in PHASE_ORDER else len(PHASE_ORDER))
    for phase in order:
        terms = phases[phase]
        kept = {t: pts for t, pts in terms.items() if any(v != 0 for _, v in pts)}
        if kept:
            out[phase] = kept
    return out


def main():
    ap = argparse.ArgumentParser(
        description="Plot validation metrics and loss terms per epoch from a run's metrics.jsonl")
    ap.add_argument("run_dir", help="run directory (output.dir of recvae_dist) or its metrics.jsonl")
    ap.add_argument("-o", "--output", help="PNG to write (default: RUN_DIR/curves.png)")
    ap.add_argument("--title", default=None, help="figure title (default: model and run directory)")
    args = ap.parse_args()

    if os.path.isdir(args.run_dir):
        run_dir = args.run_dir
        metrics_path = os.path.join(run_dir, "metrics.jsonl")
    else:
        metrics_path = args.run_dir
        run_dir = os.path.dirname(os.path.abspath(metrics_path))
    try:
        records = read_records(metrics_path)
    except (OSError, ValueError) as e:
        print(f"plot_run.py: {e}", file=sys.stderr)
        return 2
    final = read_json(os.path.join(run_dir, "final.json")) or {}
    model = final.get("model") or model_from_config(os.path.join(run_dir, "config.yaml")) or "?"
    output = args.output or os.path.join(run_dir, "curves.png")

    plt = pyplot_or_none("plot_run.py")
    if plt is None:
        return 1

    # x positions: the epoch numbers; closed-form fits (EASE, SLIM) are labelled by their `fit`.
    xs = [rec["epoch"] for rec in records]
    fits = [rec.get("fit") if isinstance(rec.get("fit"), str) else None for rec in records]
    closed_form = any(fits)
    phases = phases_of(records)
    few = len(records) <= 25
    marker = "o" if few else None

    panels = 1 + len(phases)
    cols = 1 if panels == 1 else 2
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.9 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[panels:]:
        ax.set_visible(False)

    # --- validation -------------------------------------------------------------------------
    ax = flat[0]
    drawn = False
    for key, label, style in VALIDATION_METRICS:
        pts = [(x, rec["validation"][key]) for x, rec in zip(xs, records)
               if isinstance(rec.get("validation"), dict) and is_number(rec["validation"].get(key))]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker=marker, markersize=3,
                    label=label)
            drawn = True
    best = final.get("best_epoch")
    if drawn and is_number(best):
        best_fit = final.get("best_fit")
        ax.axvline(best, color="grey", linewidth=0.8, linestyle="-.",
                   label=f"best: {best_fit}" if closed_form and best_fit else f"best epoch {best:g}")
    pop = final.get("popularity_validation")
    if drawn and isinstance(pop, dict) and is_number(pop.get("ndcg@100")):
        ax.axhline(pop["ndcg@100"], color="C0", linewidth=0.8, linestyle=":", alpha=0.6,
                   label="popularity NDCG@100")
    if drawn:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no validation metrics recorded", ha="center", va="center",
                transform=ax.transAxes)
    if closed_form:
        ax.set_xticks(xs)
        ax.set_xticklabels([f or str(x) for f, x in zip(fits, xs)], rotation=30, fontsize=8,
                           ha="right")
        ax.set_xlabel("fit (one record per value; closed-form model, no training loss)")
    else:
        ax.set_xlabel("epoch")
    ax.set_ylabel("validation metric")
    ax.set_title("validation")
    ax.grid(True, alpha=0.3)

    # --- loss terms per phase -------------------------------------------------------------
    # Terms more than 100x smaller than the phase's largest (RaCT's critic_mse next to its mll)
    # go on a second y axis on the right, so that neither group is flattened.
    for ax, (phase, terms) in zip(flat[1:], phases.items()):
        scales = {t: max(abs(v) for _, v in pts) for t, pts in terms.items()}
        top = max(scales.values())
        small_ax = None
        handles = []
        for n, (term, pts) in enumerate(terms.items()):
            target = ax
            if 100 * scales[term] < top:
                small_ax = small_ax or ax.twinx()
                target = small_ax
            handles += target.plot([xs[i] for i, _ in pts], [v for _, v in pts], "-",
                                   color=f"C{n % 10}", marker="o" if (few or len(pts) == 1) else None,
                                   markersize=3,
                                   label=term + (" (right axis)" if target is small_ax else ""))
        ax.set_ylabel("value")
        if small_ax is not None:
            small_ax.set_ylabel("value (small terms)")
        if is_number(best) and not closed_form:
            ax.axvline(best, color="grey", linewidth=0.8, linestyle="-.")
        ax.set_xlabel("epoch")
        ax.set_title(f"{phase} (per epoch, as logged)")
        ax.legend(handles=handles, loc="best", fontsize=8)
        ax.grid(True, alpha=0.3)

    title = args.title
    if title is None:
        title = f"{model}: {os.path.basename(os.path.abspath(run_dir))}"
        if is_number(final.get("ndcg@100")):
            title += f" (test NDCG@100 {final['ndcg@100']:.4f})"
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(output, dpi=100)
    except OSError as e:
        print(f"plot_run.py: cannot write {output}: {e.strerror or e}", file=sys.stderr)
        return 2
    finally:
        plt.close(fig)
    print(f"plot_run.py: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
