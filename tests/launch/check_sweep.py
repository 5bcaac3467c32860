#!/usr/bin/env python3
"""check_sweep.py: checks the outputs of a finished launch/sweep.sh run against its trial
directories, recomputing what it can independently (tests/launch/run_sweep_test.sh and
tests/slurm/run_sweep_slurm_test.sh use it).

  python3 tests/launch/check_sweep.py SWEEP_DIR --trials N [--png]

Checked:
  - every trial directory SWEEP_DIR/trials/* has a final.json, and there are N of them;
  - sweep.csv: N rows; ranks 1..N in order of validation NDCG@100 (non-increasing); each row's
    validation and test figures equal to its trial's final.json; the test columns named as not
    used for selection;
  - the winner (sweep.json) is the argmax of validation NDCG@100 read from the final.json files
    (ties: the lower trial index), and sweep.md reports its test NDCG@100 as the result, with N
    rows in its table;
  - each trial's run config (config.yaml) holds the trial's overrides, read from the trial's name
    in the manifest of sweep.json's rows;
  - winner.yaml: the winner's overrides at their nested keys;
  - the winner's keys at an end of the space (a list of 3+ numbers: its smallest or largest value;
    a range: within 5% of an end, log scale for loguniform), recomputed from the sweep file, are
    the ones sweep.json's `at_edge` names and sweep.md flags;
  - --png: sweep.png is a PNG of a sensible size.
Prints one line per failed check; exit status 0 when all pass, 1 otherwise.
"""

import argparse
import csv
import json
import math
import os
import struct
import sys

import yaml

METRICS = ("ndcg@100", "recall@20", "recall@50")
errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)
    return cond


def nested(config, key):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def same(a, b):
    """Config values equal as the trainer would read them (numbers by value, 1e-05 == 0.00001)."""
    try:
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)))
    except (TypeError, ValueError):
        return str(a) == str(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir")
    ap.add_argument("--trials", type=int, required=True)
    ap.add_argument("--png", action="store_true")
    args = ap.parse_args()
    d = args.sweep_dir

    finals = {}
    for name in sorted(os.listdir(os.path.join(d, "trials"))):
        path = os.path.join(d, "trials", name, "final.json")
        if check(os.path.isfile(path), "trial %s has no final.json" % name):
            with open(path) as f:
                finals[name] = json.load(f)
    check(len(finals) == args.trials, "%d trial directories with final.json, expected %d" % (len(finals), args.trials))

    with open(os.path.join(d, "sweep.json")) as f:
        summary = json.load(f)
    rows_json = summary["trials"]
    index_of = {r["trial"]: r["index"] for r in rows_json}

    with open(os.path.join(d, "sweep.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    check(len(rows) == args.trials, "sweep.csv has %d rows, expected %d" % (len(rows), args.trials))
    test_cols = ["test_%s_not_used_for_selection" % m for m in METRICS]
    check(rows and all(c in rows[0] for c in test_cols), "sweep.csv lacks the columns %s" % test_cols)
    previous = None
    for i, row in enumerate(rows, start=1):
        check(row["rank"] == str(i), "sweep.csv row %d has rank %r" % (i, row["rank"]))
        fin = finals.get(row["trial"])
        if not check(fin is not None, "sweep.csv row %d: no final.json for %s" % (i, row["trial"])):
            continue
        v = float(row["validation_ndcg@100"])
        check(previous is None or v <= previous, "sweep.csv not ranked by validation ndcg@100 at row %d" % i)
        previous = v
        for m in METRICS:
            check(abs(float(row["validation_" + m]) - fin["validation"][m]) < 1e-9,
                  "sweep.csv %s validation %s differs from final.json" % (row["trial"], m))
            check(abs(float(row["test_%s_not_used_for_selection" % m]) - fin[m]) < 1e-9,
                  "sweep.csv %s test %s differs from final.json" % (row["trial"], m))

    # the winner: argmax of validation ndcg@100, recomputed from the final.json files
    best = max(finals, key=lambda n: (finals[n]["validation"]["ndcg@100"], -index_of.get(n, 0)))
    w = summary.get("winner") or {}
    check(w.get("trial") == best, "winner %s, but the argmax of validation ndcg@100 is %s" % (w.get("trial"), best))
    check(rows and rows[0]["trial"] == best, "sweep.csv's first row is not the winner")
    with open(os.path.join(d, "sweep.md")) as f:
        md = f.read()
    want = "result (test): NDCG@100 %.4f" % finals[best]["ndcg@100"]
    check(want in md, "sweep.md does not report '%s'" % want)
    check("not used for selection" in md, "sweep.md does not mark the test columns as not used for selection")
    lines = md.splitlines()
    header = [l for l in lines if l.startswith("| rank | # |")]
    if check(len(header) == 1, "sweep.md has no trial table (a '| rank | # |' header)"):
        width = header[0].count("|")
        body = [l for l in lines if l.count("|") == width and l != header[0] and not l.startswith("|-")]
        check(len(body) == args.trials, "sweep.md's trial table has %d rows, expected %d" % (len(body), args.trials))
        check(body and body[0].startswith("| **1** |"), "sweep.md's first trial row is not the bold winner")

    # every trial ran with its own overrides (the manifest row order = trial index)
    for r in rows_json:
        cfg_path = os.path.join(d, "trials", r["trial"], "config.yaml")
        if not check(os.path.isfile(cfg_path), "trial %s has no config.yaml" % r["trial"]):
            continue
        with open(cfg_path) as f:
            cfg = yaml.safe_load(f)
        for key in summary["winner"]["overrides"]:
            check(same(nested(cfg, key), r[key]), "trial %s ran with %s=%r, its name says %s"
                  % (r["trial"], key, nested(cfg, key), r[key]))

    with open(os.path.join(d, "winner.yaml")) as f:
        wy = yaml.safe_load(f)
    for key, value in w.get("overrides", {}).items():
        check(same(nested(wy, key), value), "winner.yaml %s=%r, the winner's is %r" % (key, nested(wy, key), value))

    # the winner's keys at an end of the space, recomputed from the sweep file's space
    with open(summary["sweep_file"]) as f:
        space = yaml.safe_load(f)["space"]
    want = set()
    for key, value in w.get("overrides", {}).items():
        spec = space[key]
        if isinstance(spec, list):
            if len(spec) >= 3 and all(isinstance(v, (int, float)) for v in spec) and value in (min(spec), max(spec)):
                want.add(key)
        else:
            (kind, bounds), = spec.items()
            if kind != "choice":
                lo, hi, x = (math.log(v) for v in (*bounds, value)) if kind.endswith("loguniform") else (*bounds, value)
                if not 0.05 < (x - lo) / (hi - lo) < 0.95:
                    want.add(key)
    got = set(w.get("at_edge", {}))
    check(got == want, "sweep.json's at_edge names %s; the winner is at an end of the space for %s"
          % (sorted(got), sorted(want)))
    with open(os.path.join(d, "sweep.md")) as f:
        flagged = {line.split("`")[1].split("=")[0] for line in f if line.startswith("- **at the edge of the space:**")}
    check(flagged == want, "sweep.md flags %s at the edge, expected %s" % (sorted(flagged), sorted(want)))

    if args.png:
        with open(os.path.join(d, "sweep.png"), "rb") as f:
            data = f.read()
        ok = data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        if check(ok, "sweep.png is not a PNG"):
            width, height = struct.unpack(">II", data[16:24])
            check(width >= 400 and height >= 300 and len(data) > 10000,
                  "sweep.png: %dx%d pixels, %d bytes" % (width, height, len(data)))

    for e in errors:
        print("check_sweep: " + e)
    if not errors:
        print("check_sweep: %s: %d trials, winner %s (validation ndcg@100 %.4f, test %.4f) checked"
              % (d, len(finals), best, finals[best]["validation"]["ndcg@100"], finals[best]["ndcg@100"]))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
