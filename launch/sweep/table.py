#!/usr/bin/env python3
"""table.py: a tuned comparison table, one sweep per model (launch/sweep_table.sh runs this).

  launch/sweep_table.sh SWEEP.yaml [SWEEP.yaml ...] --out DIR [sweep.sh options]

Runs the sweeps one after another, each into DIR/<file name> with its own file's successive
halving, then writes DIR/table.md and DIR/table.json: one row per sweep with its winner (chosen
on validation by that sweep) and the winner's test figures: every model tuned by the same
runner, on the same validation users, with the budget its file gives, and only the winners' test
figures reported.

Every sweep file is checked first (`sweep.sh --dry-run`), so a bad one is refused before any
trial of any sweep starts. Running the same command again skips finished trials and sweeps (the
runner keeps its state in the trial directories). See docs/operations.md#tuned-tables.

An actor from an earlier sweep. RaCT's sweep starts every trial from a trained actor
(`ract.actor_run`). Its sweep file names the directory that the actor sweep's winner.yaml
trains into (`runs/sweeps/gowalla-multvae/winner`), because run alone, a sweep cannot know
another's results. In a table the actor sweep ran just before, and its winning trial directory
already is that model (trained by the same config to its best epoch, best_model.pt kept), so
the table points `ract.actor_run` at it instead of training the winner a second time: a value
of the form `.../<name>/winner`, where <name> is an earlier sweep of the same table, becomes
that sweep's winning trial directory (from its sweep.json). A sweep whose actor sweep has no
winner is not started.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import yaml

from report import fmt
from results import METRICS, read_json
from space import SweepError, format_value, read_sweep
from sweep import NO_EPOCHS, Plan

SWEEP_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweep.py")

USAGE = """launch/sweep_table.sh SWEEP.yaml [SWEEP.yaml ...] --out DIR [options]

Tunes several models with one command: runs each sweep file (launch/sweep.sh) into
DIR/<file name>, with successive halving where the file has a halving: section, then writes
DIR/table.md and DIR/table.json: one row per sweep, its winner chosen on validation NDCG@100 and
the winner's test NDCG@100 / Recall@20 / Recall@50, ranked by test NDCG@100. Every sweep file is
checked before any trial starts; running the same command again goes on where it stopped."""

EPILOG = """options given to every sweep: --parallel K, --slurm, --cpus-per-task N,
  --sbatch-args ARGS, --set K=V (repeatable), --retry-failed, --bin PATH.
RaCT after Mult-VAE: a fixed ract.actor_run of the form .../<name>/winner, where <name> is an
  earlier sweep of the table, is pointed at that sweep's winning trial directory ("An actor from
  an earlier sweep" in launch/sweep/table.py's docstring).
exit status: 0 every sweep finished, 1 a trial or a sweep failed (the others went on),
  2 bad sweep file or arguments (nothing started), 3 interrupted (run the same command again)."""


def say(msg):
    print("sweep_table: %s" % msg, flush=True)


class Entry:
    """One sweep of the table: its file, name (the file's name without .yaml) and directory.
    `sweep` (the parsed file) is None for a sweep listed from its directory by --report alone."""

    def __init__(self, path, out, parse=True):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.dir = os.path.join(out, self.name)
        self.sweep = read_sweep(path) if parse else None
        self.eta = self.sweep.halving.get("eta") if self.sweep else None

    def summary(self):
        """sweep.json of this sweep's directory, or None when it has none yet."""
        return read_summary(self.dir)


def actor_links(entry, earlier):
    """{config key: earlier sweep name} for fixed values of the form .../<name>/winner."""
    names = {e.name for e in earlier}
    links = {}
    for key, value in entry.sweep.fixed.items():
        if key.endswith(".actor_run") and isinstance(value, str):
            parent, leaf = os.path.split(os.path.normpath(value))
            if leaf == "winner" and os.path.basename(parent) in names:
                links[key] = os.path.basename(parent)
    return links


def trained_from_another(entry, key, run_dir):
    """(trial, its value) of a trial in the sweep's directory whose config.yaml has another `key`
    than run_dir: trial names hold only the swept keys, so the runner would keep such a trial as
    finished although its actor has changed (a longer actor sweep found a new winner)."""
    trials = os.path.join(entry.dir, "trials")
    section, leaf = key.rsplit(".", 1)
    for name in sorted(os.listdir(trials)) if os.path.isdir(trials) else []:
        try:
            with open(os.path.join(trials, name, "config.yaml"), encoding="utf-8") as f:
                node = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError):
            continue  # not started, or the trainer will refuse it with a better message
        for part in section.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        value = node.get(leaf) if isinstance(node, dict) else None
        if isinstance(value, str) and os.path.realpath(value) != os.path.realpath(run_dir):
            return name, value
    return None


def sweep_command(entry, args, model, extra_sets):
    cmd = [sys.executable, SWEEP_PY, entry.path, "--out", entry.dir]
    if entry.eta is not None and model not in NO_EPOCHS:
        cmd += ["--halving", str(entry.eta)]
    if args.parallel is not None:
        cmd += ["--parallel", str(args.parallel)]
    if args.slurm:
        cmd += ["--slurm", "--cpus-per-task", str(args.cpus_per_task)]
        if args.sbatch_args:
            cmd += ["--sbatch-args", args.sbatch_args]
    if args.retry_failed:
        cmd.append("--retry-failed")
    if args.bin:
        cmd += ["--bin", args.bin]
    for s in list(args.set) + extra_sets:
        cmd += ["--set", s]
    return cmd


def model_of(entry, args):
    """The sweep's model type (its base config's model.type, after the fixed and --set values)."""
    return Plan(argparse.Namespace(sweep=entry.path, out=entry.dir, set=args.set, trials=None)).model


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="launch/sweep_table.sh", usage=USAGE, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", nargs="*", metavar="SWEEP.yaml", help="sweep files, run in this order")
    ap.add_argument("--out", required=True, help="the table's directory (one sweep directory per file)")
    ap.add_argument("--parallel", type=int, default=None, metavar="K",
                    help="trials at a time in each sweep (local: cores split; Slurm: array throttle)")
    ap.add_argument("--slurm", action="store_true", help="each sweep as a Slurm job array, one after another")
    ap.add_argument("--cpus-per-task", type=int, default=1, metavar="N", help="--slurm: CPUs of each trial")
    ap.add_argument("--sbatch-args", default="", metavar="ARGS", help="--slurm: more sbatch options")
    ap.add_argument("--set", action="append", default=[], metavar="K=V",
                    help="override for every trial of every sweep (repeatable; e.g. train.threads=1)")
    ap.add_argument("--retry-failed", action="store_true", help="run failed trials again")
    ap.add_argument("--bin", default=None, help="recvae_dist (default as for launch/sweep.sh)")
    ap.add_argument("--dry-run", action="store_true", help="check every sweep file; run nothing")
    ap.add_argument("--report", action="store_true",
                    help="run nothing; write the table from the sweep directories of --out")
    args = ap.parse_args(argv)
    if not args.sweeps and not args.report:
        ap.error("give at least one sweep file")
    return args


def entries_of(args):
    if not args.sweeps:  # --report without files: every sweep directory of --out, in name order
        return [Entry(d + ".yaml", args.out, parse=False) for d in sorted(os.listdir(args.out))
                if read_summary(os.path.join(args.out, d))]
    entries = []
    for p in args.sweeps:
        e = Entry(p, args.out)
        if any(x.name == e.name for x in entries):
            raise SweepError("%s: two sweep files named %s.yaml; each needs its own directory %s" % (
                p, e.name, e.dir))
        entries.append(e)
    return entries


def read_summary(d):
    """A sweep directory's sweep.json, or None."""
    return read_json(os.path.join(d, "sweep.json"))


def check_all(entries, args):
    """`sweep.py --dry-run` of every file (a bad one refused before anything runs); the models."""
    models = {}
    for e in entries:
        models[e.name] = model_of(e, args)
        p = subprocess.run(sweep_command(e, args, models[e.name], []) + ["--dry-run"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            raise SweepError("%s: refused (above); no sweep was started" % e.path)
    return models


def row_of(entry, doc):
    doc = doc or {}
    w = doc.get("winner")
    row = {"sweep": entry.name, "sweep_file": doc.get("sweep_file", entry.path), "model": doc.get("model"),
           "search": doc.get("search"), "trials_planned": doc.get("trials_planned"),
           "trials_done": doc.get("trials_done", 0), "epochs_trained": doc.get("epochs_trained"),
           "trainer_seconds": doc.get("trainer_seconds"),
           "wall_seconds": doc.get("wall_seconds_all_invocations"),
           "finished": w is not None and doc.get("trials_done") == doc.get("trials_planned"),
           "winner": None}
    if doc.get("halving"):
        row["epochs_full_sweep"] = doc["halving"].get("epochs_full_sweep")
    if w:
        row["winner"] = {"trial": w["trial"], "overrides": w["overrides"], "best_epoch": w["best_epoch"],
                         "epochs": w.get("epochs"), "run_dir": w["run_dir"], "at_edge": w.get("at_edge", {}),
                         "validation": w["validation"], "test": w["test"]}
    return row


def best_epoch_cell(row):
    """"B of N", and "still improving" where the winner's best epoch is the last it trained: patience
    did not stop it, its epoch budget did, so more epochs may well give more (the edge of the
    space's epochs, as at_edge is of its keys)."""
    w = row["winner"]
    if not w or w["best_epoch"] is None:
        return ""
    if row["model"] in NO_EPOCHS or not w.get("epochs"):
        return str(w["best_epoch"])
    cell = "%d of %d" % (w["best_epoch"], w["epochs"])
    return cell + (", **still improving**" if w["best_epoch"] == w["epochs"] else "")


def seconds(x):
    return "" if x is None else ("{:,.0f}".format(x) if x >= 100 else "%.1f" % x)


def write_table(entries, out):
    rows = [row_of(e, e.summary()) for e in entries]
    ranked = sorted([r for r in rows if r["winner"]], key=lambda r: -(r["winner"]["test"]["ndcg@100"] or 0))
    ranked += [r for r in rows if not r["winner"]]
    finished = [r for r in ranked if r["finished"]]
    lines = ["# Tuned table", "",
             "One sweep per model (launch/sweep_table.sh). Each winner was chosen by its own sweep on "
             "**validation** NDCG@100; the test columns are the winners' only. Rows ranked by test "
             "NDCG@100; a sweep that has not finished is marked so, and its row is its best so far.", ""]
    if len(finished) >= 2:
        a, b = finished[0], finished[1]
        d = a["winner"]["test"]["ndcg@100"] - b["winner"]["test"]["ndcg@100"]
        lines += ["**%s (%s) is first: test NDCG@100 %s, %+.4f over %s (%s, %s).**" % (
            a["model"], a["sweep"], fmt(a["winner"]["test"]["ndcg@100"]), d, b["model"], b["sweep"],
            fmt(b["winner"]["test"]["ndcg@100"])), ""]
    head = ["model (sweep)", "trials", "epochs trained", "winner", "best epoch", "val NDCG@100",
            "test NDCG@100", "test Recall@20", "test Recall@50", "trainer s", "wall s"]
    lines += ["| " + " | ".join(head) + " |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in ranked:
        w = r["winner"]
        trials = "%s of %s" % (r["trials_done"], r["trials_planned"] if r["trials_planned"] else "?")
        if not r["finished"]:
            trials += " (**not finished**)"
        epochs = "" if r["epochs_trained"] is None else str(r["epochs_trained"])
        if r.get("epochs_full_sweep"):
            epochs += " of %d" % r["epochs_full_sweep"]
        settings = ""
        if w:
            settings = ", ".join("`%s=%s`" % (k, format_value(v)) for k, v in w["overrides"].items())
            for key, where in w["at_edge"].items():
                settings += "; `%s` is %s" % (key, where)
        cells = ["%s (`%s`)" % (r["model"] or "?", r["sweep"]), trials, epochs, settings,
                 best_epoch_cell(r),
                 fmt(w["validation"]["ndcg@100"]) if w else ""]
        cells += [fmt(w["test"][m]) if w else "" for m in METRICS]
        cells += [seconds(r[k]) for k in ("trainer_seconds", "wall_seconds")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Each sweep's own report (every trial, the rungs, the PNG): `%s/<sweep>/sweep.md`; "
              "the winners' configs: `%s/<sweep>/winner.yaml`." % (out, out), ""]
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(os.path.join(out, "table.json"), "w", encoding="utf-8") as f:
        json.dump({"ranked_by": "test ndcg@100 of each sweep's winner (chosen on validation)",
                   "rows": ranked}, f, indent=1)
        f.write("\n")
    return ranked


def run_sweep(cmd):
    """Runs one sweep.py; SIGINT, SIGTERM and SIGHUP sent to the table (a scheduler's or
    `timeout`'s, which reach this process only) are passed on to it, so that its trials
    checkpoint and it exits 3 with its report written, and the table is written after it."""
    child = subprocess.Popen(cmd)

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in signals}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # a second Ctrl-C while waiting: keep waiting for the child
                continue
    finally:
        for s in signals:
            signal.signal(s, previous[s])


def run_all(entries, models, args):
    """Runs the sweeps in order; returns the table's exit status."""
    status = 0
    for i, e in enumerate(entries):
        extra, missing = [], None
        for key, name in actor_links(e, entries[:i]).items():
            actor = next(x for x in entries if x.name == name).summary()
            w = actor.get("winner") if actor else None
            if not w:
                missing = "%s needs the winner of the sweep %s, which has none" % (key, name)
                break
            stale = trained_from_another(e, key, w["run_dir"])
            if stale:
                missing = ("%s: trial %s was trained from %s, not from %s's winner %s; remove %s to tune "
                           "it again on the new actor" % (key, stale[0], stale[1], name, w["run_dir"], e.dir))
                break
            extra.append("%s=%s" % (key, w["run_dir"]))
            say("%s: %s=%s (the winning trial of %s)" % (
                e.name, key, w["run_dir"], name))
        if missing:
            say("%s: not started: %s" % (e.name, missing))
            status = 1
            continue
        say("sweep %d of %d: %s -> %s%s" % (i + 1, len(entries), e.path, e.dir,
                                             " (halving, eta %d)" % e.eta
                                             if e.eta and models[e.name] not in NO_EPOCHS else ""))
        rc = run_sweep(sweep_command(e, args, models[e.name], extra))
        if rc in (2, 3):
            say("%s: sweep.sh exited %d; the table stops here (run the same command again to go on)" % (e.name, rc))
            return rc
        if rc != 0:
            status = 1
    return status


def main(argv):
    args = parse_args(argv)
    t0 = time.time()
    try:
        if args.report and not os.path.isdir(args.out):
            raise SweepError("--report: %s is not a directory" % args.out)
        entries = entries_of(args)
        models = {} if args.report else check_all(entries, args)
    except SweepError as e:
        print("sweep_table.sh: %s" % e, file=sys.stderr)
        return 2
    if args.dry_run:
        for e in entries:
            print("%s\t%s\t%s\t%s" % (e.name, models[e.name], e.path, e.dir))
        return 0
    os.makedirs(args.out, exist_ok=True)
    status = 0 if args.report else run_all(entries, models, args)
    ranked = write_table(entries, args.out)
    say("table: %s (%d sweep(s), %d with a winner; %.0f s this invocation)" % (
        os.path.join(args.out, "table.md"), len(entries), sum(1 for r in ranked if r["winner"]),
        time.time() - t0))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
