#!/usr/bin/env python3
"""compare_table.py: the table of a model comparison (launch/analysis/compare.sh) from its run
directories.

  python3 launch/analysis/compare_table.py OUT [--no-png]

Reads OUT/compare.txt (written by compare.sh: the split, and one `run=MODEL SEED` line per planned
run, in order) and every OUT/runs/MODEL-sSEED/final.json, with OUT/runs/MODEL-sSEED.rc (the exit
status) and .seconds (wall time) when present. Without compare.txt the runs are found by their
directory names (OUT/runs/*-s<seed>/). Writes:

  OUT/table.md    one row per model: test NDCG@100, Recall@20, Recall@50 as mean ± std over the
                  seeds (sample standard deviation, n - 1; 0 for a single run), the best mean of
                  each column in bold (ties: the first row), the runs and the mean seconds per run
  OUT/table.json  per model: each seed's figures, status and seconds; mean and std of each metric
  OUT/table.png   grouped bars (one group per metric, one bar per model, std as error bars); only
                  with matplotlib: without it the PNG is skipped with a message, the rest is written

A run counts as failed when its exit status is not 0 or its final.json is missing or unreadable; a
model all of whose runs failed has "failed" in its cells; one with some failed runs has the mean of
the others and says which failed. Uses only the standard library (matplotlib for the PNG).
Exit status: 0 every run succeeded, 1 a run failed (everything else is still written), 2 bad input.
"""

import argparse
import json
import math
import os
import re
import statistics
import sys

from pyplot_or_none import pyplot_or_none

METRICS = [("ndcg@100", "NDCG@100"), ("recall@20", "Recall@20"), ("recall@50", "Recall@50")]
NAMES = {"recvae": "RecVAE", "multvae": "Mult-VAE", "multdae": "Mult-DAE", "cdae": "CDAE",
         "autorec": "AutoRec", "ract": "RaCT", "ease": "EASE", "slim": "SLIM", "wmf": "WMF",
         "pmf": "PMF", "implicit_slim": "RecVAE + ImplicitSLIM"}
DETERMINISTIC = {"ease", "slim"}
RUN_DIR = re.compile(r"^(?P<model>.+)-s(?P<seed>-?\d+)$")


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_plan(out):
    """(meta dict, [(model, seed)]) from compare.txt, or discovered from OUT/runs/."""
    meta, plan = {}, []
    path = os.path.join(out, "compare.txt")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if not sep:
                    continue
                if key == "run":
                    parts = value.split()
                    if len(parts) == 2 and re.fullmatch(r"-?\d+", parts[1]):
                        plan.append((parts[0], int(parts[1])))
                else:
                    meta[key] = value
    if not plan:
        runs = os.path.join(out, "runs")
        found = []
        if os.path.isdir(runs):
            for name in sorted(os.listdir(runs)):
                m = RUN_DIR.match(name)
                if m and os.path.isdir(os.path.join(runs, name)):
                    found.append((m["model"], int(m["seed"])))
        order = []
        for model, _ in found:
            if model not in order:
                order.append(model)
        plan = sorted(found, key=lambda r: (order.index(r[0]), r[1]))
    return meta, plan


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def load_run(out, model, seed):
    name = f"{model}-s{seed}"
    run_dir = os.path.join(out, "runs", name)
    run = {"seed": seed, "dir": os.path.join("runs", name), "status": "ok"}
    rc = read_text(os.path.join(out, "runs", name + ".rc"))
    run["exit_status"] = int(rc) if rc is not None and re.fullmatch(r"-?\d+", rc) else None
    wall = read_text(os.path.join(out, "runs", name + ".seconds"))
    try:
        run["wall_seconds"] = float(wall) if wall is not None else None
    except ValueError:
        run["wall_seconds"] = None
    final = None
    try:
        with open(os.path.join(run_dir, "final.json"), encoding="utf-8") as f:
            final = json.load(f)
    except (OSError, ValueError):
        final = None
    if run["exit_status"] not in (None, 0):
        run["status"] = f"failed (exit {run['exit_status']})"
    elif not isinstance(final, dict):
        run["status"] = "failed (no final.json)"
    elif not all(is_number(final.get(k)) for k, _ in METRICS):
        run["status"] = "failed (final.json without test metrics)"
    if run["status"] == "ok":
        for key, _ in METRICS:
            run[key] = float(final[key])
        run["seconds"] = final.get("seconds") if is_number(final.get("seconds")) else None
        run["best_epoch"] = final.get("best_epoch")
        pop = final.get("popularity")
        if isinstance(pop, dict) and all(is_number(pop.get(k)) for k, _ in METRICS):
            run["popularity"] = {k: float(pop[k]) for k, _ in METRICS}
    return run


def summarise(model, runs):
    ok = [r for r in runs if r["status"] == "ok"]
    entry = {"name": NAMES.get(model, model), "deterministic": model in DETERMINISTIC,
             "runs": runs, "mean": None, "std": None}
    if not ok:
        entry["status"] = "failed"
    elif len(ok) < len(runs):
        entry["status"] = "partial"
    else:
        entry["status"] = "ok"
    if ok:
        entry["mean"] = {k: statistics.fmean(r[k] for r in ok) for k, _ in METRICS}
        entry["std"] = {k: (statistics.stdev([r[k] for r in ok]) if len(ok) > 1 else 0.0)
                        for k, _ in METRICS}
        secs = [r["seconds"] for r in ok if r.get("seconds") is not None]
        walls = [r["wall_seconds"] for r in ok if r.get("wall_seconds") is not None]
        entry["seconds"] = statistics.fmean(secs) if secs else None
        entry["wall_seconds"] = statistics.fmean(walls) if walls else None
    else:
        entry["seconds"] = entry["wall_seconds"] = None
    return entry


def write_png(out, order, models, title):
    plt = pyplot_or_none("compare_table.py", f"table.png not drawn (rerun `launch/analysis/compare_table.py {out}`)")
    if plt is None:
        return None
    shown = [m for m in order if models[m]["mean"] is not None]
    if not shown:
        print("compare_table.py: no successful model, table.png not drawn", file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.55 * len(shown) * len(METRICS)), 4.4))
    width = 0.8 / len(shown)
    for n, model in enumerate(shown):
        xs = [i - 0.4 + width * (n + 0.5) for i in range(len(METRICS))]
        ax.bar(xs, [models[model]["mean"][k] for k, _ in METRICS], width,
               yerr=[models[model]["std"][k] for k, _ in METRICS], capsize=3,
               color=f"C{n % 10}", label=models[model]["name"])
    ax.set_xticks(range(len(METRICS)))
    ax.set_xticklabels([label for _, label in METRICS])
    ax.set_ylabel("test metric (mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(shown), 4), loc="upper left")
    top = max(models[m]["mean"][k] + models[m]["std"][k] for m in shown for k, _ in METRICS)
    ax.set_ylim(0, top * 1.25)
    fig.tight_layout()
    path = os.path.join(out, "table.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(
        description="Tabulate a model comparison (launch/analysis/compare.sh) from its runs' final.json")
    ap.add_argument("out", help="the comparison's directory (compare.sh --out)")
    ap.add_argument("--no-png", action="store_true", help="do not draw table.png")
    args = ap.parse_args()
    out = args.out

    if not os.path.isdir(out):
        print(f"compare_table.py: {out} is not a directory", file=sys.stderr)
        return 2
    meta, plan = read_plan(out)
    if not plan:
        print(f"compare_table.py: {out} has no runs (no compare.txt run= lines, no runs/*-sSEED/)",
              file=sys.stderr)
        return 2

    order, runs = [], {}
    for model, seed in plan:
        if model not in order:
            order.append(model)
        runs.setdefault(model, []).append(load_run(out, model, seed))
    models = {m: summarise(m, runs[m]) for m in order}

    best = {}
    for key, _ in METRICS:
        candidates = [m for m in order if models[m]["mean"] is not None]
        if candidates:
            best[key] = max(candidates, key=lambda m: (models[m]["mean"][key], -order.index(m)))
    split = meta.get("split", "")
    popularity = next((r["popularity"] for m in order for r in runs[m] if "popularity" in r), None)

    # --- table.json -------------------------------------------------------------------------
    table = {"split": split, "preset": meta.get("preset"), "ranks": meta.get("ranks"),
             "metrics": [k for k, _ in METRICS],
             "std": "sample standard deviation over the seeds (n - 1); 0 for a single run",
             "order": order, "best": best, "popularity": popularity, "models": models}
    with open(os.path.join(out, "table.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=2)
        f.write("\n")

    # --- table.md ---------------------------------------------------------------------------
    title = f"Test metrics on {os.path.basename(split)}" if split else "Test metrics"
    md = [f"# {title}", ""]
    md.append("| model | " + " | ".join(label for _, label in METRICS) + " | runs | s/run |")
    md.append("|---|" + "---:|" * len(METRICS) + "---:|---:|")
    for m in order:
        e = models[m]
        if e["mean"] is None:
            cells = ["failed"] * len(METRICS)
        else:
            cells = []
            for key, _ in METRICS:
                cell = f"{e['mean'][key]:.4f} ± {e['std'][key]:.4f}"
                cells.append(f"**{cell}**" if best.get(key) == m else cell)
        ok = sum(1 for r in e["runs"] if r["status"] == "ok")
        if e["deterministic"]:
            runs_cell = "1 (deterministic)" if ok == len(e["runs"]) else "0 of 1"
        elif ok == len(e["runs"]):
            runs_cell = str(ok)
        else:
            failed = ", ".join(str(r["seed"]) for r in e["runs"] if r["status"] != "ok")
            runs_cell = f"{ok} of {len(e['runs'])} (seed {failed} failed)"
        secs = e["seconds"] if e["seconds"] is not None else e["wall_seconds"]
        md.append(f"| {e['name']} | " + " | ".join(cells) +
                  f" | {runs_cell} | {'' if secs is None else f'{secs:.1f}'} |")
    md.append("")
    notes = ["Test users of the split, best validation epoch of each run (final.json). Cells: mean "
             "± sample standard deviation over the seeds (train.seed); bold: the best mean of each "
             "column. EASE and SLIM are deterministic (no random initialisation or sampling): one "
             "run, std 0. s/run: the trainer's own seconds per run (final.json), mean over runs."]
    if popularity:
        notes.append("Popularity baseline: " + ", ".join(
            f"{label} {popularity[key]:.4f}" for key, label in METRICS) + ".")
    failed_runs = [(m, r) for m in order for r in runs[m] if r["status"] != "ok"]
    for m, r in failed_runs:
        notes.append(f"{NAMES.get(m, m)} seed {r['seed']}: {r['status']}; log {r['dir']}.log.")
    md.extend(notes)
    png = None if args.no_png else write_png(out, order, models, title)
    stale = os.path.join(out, "table.png")
    if png is None and os.path.exists(stale):
        os.remove(stale)  # an earlier run's figure would no longer match the table
    if png:
        md.append("")
        md.append("![comparison](table.png)")
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md[2:3 + len(order) + 1]))
    print(f"compare_table.py: wrote {os.path.join(out, 'table.md')}, table.json"
          + (" and table.png" if png else ""))
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
