#!/usr/bin/env python3
"""sweep.py: hyper-parameter sweeps of recvae_dist, chosen on validation data (launch/sweep.sh runs
this; the format of a sweep file and the outputs are in docs/operations.md, section Sweeps, and
in --help).

The runner keeps no state of its own between invocations: what is done is read from the trial
directories (final.json, metrics.jsonl, checkpoints/latest), so re-running the same command
skips finished trials, resumes interrupted ones (output.auto_resume) and, with --halving, replays
the rungs already decided and goes on from the first unfinished one.
"""

import argparse
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from report import Report
from results import Result, halving_walk, rung_epochs
from space import SweepError, format_value, load_yaml_text, parse_set, read_sweep

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH_DIR = os.path.dirname(HERE)
REPO_DIR = os.path.dirname(LAUNCH_DIR)
TEMPLATE = os.path.join(LAUNCH_DIR, "slurm_recvae.sbatch")
ARRAY_SCRIPT = os.path.join(HERE, "array.sbatch")
# No successive halving: EASE and SLIM are fitted, not trained by epochs; RaCT's length is its
# ract.*_epochs, not train.epochs.
NO_EPOCHS = {"ease": "fitted, not trained by epochs", "slim": "fitted, not trained by epochs",
             "ract": "trained for ract.critic_epochs + ract.ac_epochs, not train.epochs"}

USAGE = """launch/sweep.sh SWEEP.yaml [options]

Runs every trial of a sweep file (a base config, fixed overrides and a search space over config
keys: grid lists, or random draws from uniform / loguniform / int_uniform / int_loguniform /
choice), each as an ordinary run directory OUT/trials/<overrides>, then ranks the trials by
validation NDCG@100 and writes OUT/sweep.md, sweep.csv, sweep.json, sweep.png and winner.yaml.
Every trial's overrides are first checked with `recvae_dist --check`; a bad sweep file is
refused (exit 2, naming the key) before any trial starts. Re-running the same command skips
finished trials and resumes interrupted ones. Format and examples: docs/operations.md#sweeps."""

EPILOG = """where the trials run:
  (default)            one after another on this machine; --parallel K runs K at a time, each
                       with train.threads = cores / K (unless train.threads is set)
  --slurm              a Slurm job array through launch/slurm_recvae.sbatch (one array task per
                       trial, its index picking the trial from OUT/slurm/manifest-*.tsv; a task
                       that is preempted or hits its time limit checkpoints and is requeued);
                       waits for the array and writes the report unless --no-wait

successive halving (--halving ETA): every trial trains --min-epochs epochs; the best
max(1, n/ETA) by validation NDCG@100 go on (their runs are resumed with ETA times the epochs),
and so on up to --max-epochs. Defaults: the sweep file's halving: section, else max = the
trials' train.epochs and min = max / ETA^2. With train.patience a trial that stopped early
keeps its result. sweep.md reports the epochs trained against a full sweep.

environment: RECVAE_BIN (trainer; default BIN_DIR/recvae_dist, else build/recvae_dist),
  RECVAE_PYTHON (Python with PyYAML, and matplotlib for the PNG), SLURM_CONF (--slurm).
exit status: 0 every trial finished, 1 a trial failed (the others go on; it is not retried
  unless --retry-failed), 2 bad sweep file or arguments (nothing started), 3 interrupted
  (SIGINT/SIGTERM: running trials checkpoint; run the same command again to go on)."""


def say(msg):
    print("sweep: " + msg, flush=True)


def trainer_path(arg):
    if arg:
        return os.path.abspath(arg)
    if os.environ.get("RECVAE_BIN"):
        return os.path.abspath(os.environ["RECVAE_BIN"])
    if os.environ.get("BIN_DIR"):
        return os.path.abspath(os.path.join(os.environ["BIN_DIR"], "recvae_dist"))
    return os.path.join(REPO_DIR, "build", "recvae_dist")


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Plan:
    """The sweep file with the command line applied: the trials, and how each one is run."""

    def __init__(self, args):
        self.sweep_file = args.sweep
        self.sweep = read_sweep(args.sweep)
        self.base = self.sweep.base
        self.base_path = self._find_base(self.sweep.base)
        self.cli_sets = [parse_set(s) for s in args.set]
        for key, _ in self.cli_sets:
            if key in self.sweep.keys:
                raise SweepError("--set key '%s': swept in the space of %s; it cannot also be fixed"
                                 % (key, args.sweep))
        stem = os.path.splitext(os.path.basename(args.sweep))[0]
        self.out = os.path.abspath(args.out or self.sweep.out or os.path.join("runs", "sweeps", stem))
        if args.trials is not None and args.trials < 1:
            raise SweepError("--trials: at least 1")
        self.trials = self.sweep.make_trials(args.trials)
        with open(self.base_path, encoding="utf-8") as f:
            try:
                self.base_config = load_yaml_text(f.read()) or {}
            except Exception as e:  # noqa: BLE001  (the trainer's check names it better)
                raise SweepError("sweep key 'base': %s is not valid YAML (%s)" % (self.base_path, e))
        if not isinstance(self.base_config, dict):
            raise SweepError("sweep key 'base': %s is not a YAML mapping" % self.base_path)
        self.model = self.lookup("model.type") or "recvae"
        self.threads_given = any(k == "train.threads" for k, _ in self.common_overrides()) or \
            "train.threads" in self.sweep.keys

    def _find_base(self, base):
        candidates = [base] if os.path.isabs(base) else [base, os.path.join(REPO_DIR, base)]
        for c in candidates:
            if os.path.isfile(c):
                return os.path.abspath(c)
        raise SweepError("sweep key 'base': config '%s' not found (relative paths: from the working "
                         "directory, else from %s)" % (base, REPO_DIR))

    def common_overrides(self):
        """(key, value) of every trial: the file's fixed: then the command line's --set."""
        return list(self.sweep.fixed.items()) + self.cli_sets

    def lookup(self, key):
        """A key's value for the trials before their own overrides (None when unset)."""
        value = None
        node = self.base_config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            value = node
        for k, v in self.common_overrides():
            if k == key:
                value = v
        return value

    def run_dir(self, trial):
        return os.path.join(self.out, "trials", trial.name)

    def log(self, trial):
        return os.path.join(self.out, "logs", trial.name + ".log")

    def failed_marker(self, trial):
        return os.path.join(self.out, "logs", trial.name + ".failed")

    def set_args(self, trial, epochs=None):
        """The trial's overrides as `key=value` texts (not output.dir, not the threads)."""
        sets = ["%s=%s" % (k, format_value(v)) for k, v in self.common_overrides()]
        sets += trial.set_args()
        if epochs is not None:
            sets.append("train.epochs=%d" % epochs)
        return sets


# ------------------------------------------------------------------------------------------------
# Checking before anything starts
# ------------------------------------------------------------------------------------------------
def check_call(binary, base, sets):
    cmd = [binary, base]
    for s in sets:
        cmd += ["--set", s]
    cmd.append("--check")
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    except OSError as e:
        return 2, "cannot run %s: %s" % (binary, e.strerror)
    except subprocess.TimeoutExpired:
        return 2, "recvae_dist --check took more than 120 s"
    text = " ".join(line.strip() for line in p.stdout.splitlines() if line.strip())
    return p.returncode, text


def check_sets_call(binary, base, all_sets):
    """recvae_dist --check-sets: every set checked in one process (a --check each costs the
    trainer's start-up, about 0.4 s). A (status, text) per set as check_call gives, or None when the
    trainer does not know the option."""
    if any("\t" in s or "\n" in s for sets in all_sets for s in sets):
        return None
    fd, path = tempfile.mkstemp(prefix="recvae-check-sets.", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join("\t".join(sets) + "\n" for sets in all_sets))
        try:
            p = subprocess.run([binary, base, "--check-sets", path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=600)
        except OSError as e:
            return [(2, "cannot run %s: %s" % (binary, e.strerror))] * len(all_sets)
        except subprocess.TimeoutExpired:
            return [(2, "recvae_dist --check-sets took more than 600 s")] * len(all_sets)
    finally:
        os.unlink(path)
    answers = {}
    for line in p.stdout.splitlines():
        m = re.match(r"set (\d+): (.*)$", line.strip())
        if m:
            answers[int(m.group(1))] = m.group(2)
    if len(answers) != len(all_sets):
        if "unknown option '--check-sets'" in p.stdout:
            return None
        text = " ".join(line.strip() for line in p.stdout.splitlines() if line.strip())
        return [(p.returncode or 2, text)] * len(all_sets)
    return [(0, "") if answers[i + 1] == "valid" else (2, answers[i + 1]) for i in range(len(all_sets))]


def check_digest(binary, base_path, sets):
    """What a --check answer depends on: the trainer (path, size, time), the base config's text
    and the overrides."""
    st = os.stat(binary)
    h = hashlib.sha1()
    with open(base_path, "rb") as f:
        h.update(f.read())
    h.update(("\0".join([binary, str(st.st_size), str(st.st_mtime_ns)] + sets)).encode())
    return h.hexdigest()


def checked_file(plan):
    return os.path.join(plan.out, "checked.txt")


def check_plan(plan, binary, epochs):
    """recvae_dist --check on: the base with the common overrides; each swept key at each listed
    value (or both bounds of its range); every trial. The first refusal is raised, naming the key.
    Sets accepted before (OUT/checked.txt, digests of check_digest) are not checked again."""
    if not os.access(binary, os.X_OK):
        raise SweepError("trainer '%s' not found or not executable (give --bin or RECVAE_BIN)" % binary)
    common = ["%s=%s" % (k, format_value(v)) for k, v in plan.common_overrides()]
    extra = [] if epochs is None else ["train.epochs=%d" % epochs]
    jobs = [("the base config %s with the fixed overrides" % plan.base, common + extra)]
    for p in plan.sweep.params:
        for v in p.extremes():
            jobs.append(("space key '%s' value %s" % (p.key, format_value(v)),
                         common + extra + ["%s=%s" % (p.key, format_value(v))]))
    for t in plan.trials:
        jobs.append(("trial %d (%s)" % (t.index, t.name), plan.set_args(t, epochs)))
    try:
        with open(checked_file(plan), encoding="utf-8") as f:
            known = set(f.read().split())
    except OSError:
        known = set()
    digests = [check_digest(binary, plan.base_path, sets) for _, sets in jobs]
    todo = [(j, d) for j, d in zip(jobs, digests) if d not in known]
    if todo:
        rc, text = check_call(binary, plan.base_path, common)
        if rc != 0 and "--check" in text and "unknown" in text.lower():
            raise SweepError("%s does not know --check (build a newer recvae_dist): %s" % (binary, text))
    outcomes = check_sets_call(binary, plan.base_path, [sets for (_, sets), _ in todo]) if todo else []
    if outcomes is None:  # a trainer without --check-sets: one process per set
        with ThreadPoolExecutor(max_workers=max(1, available_cores())) as pool:
            outcomes = list(pool.map(lambda jd: check_call(binary, plan.base_path, jd[0][1]), todo))
    for ((what, _), _), (rc, text) in zip(todo, outcomes):
        if rc != 0:
            raise SweepError("%s: refused by recvae_dist --check (exit %d): %s" % (what, rc, text))
    return len(jobs), len(jobs) - len(todo), digests


def remember_checked(plan, digests):
    with open(checked_file(plan), "w", encoding="utf-8") as f:
        f.write("\n".join(sorted(set(digests))) + "\n")


# ------------------------------------------------------------------------------------------------
# Local runs
# ------------------------------------------------------------------------------------------------
class Stop:
    """SIGINT / SIGTERM / SIGHUP while trials run: the first is passed to the trials as SIGTERM
    (they checkpoint and exit 3), a second kills them."""

    def __init__(self):
        self.count = 0
        self.children = []

    def __call__(self, signum, _frame):
        self.count += 1
        sig = signal.SIGTERM if self.count == 1 else signal.SIGKILL
        say("got %s: %s the running trials" % (signal.Signals(signum).name,
                                                 "stopping (checkpoint)" if self.count == 1 else "killing"))
        for p in self.children:
            if p.poll() is None:
                try:
                    p.send_signal(sig)
                except OSError:
                    pass


def last_line(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4000))
            lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]
        return lines[-1].strip() if lines else ""
    except OSError:
        return ""


def run_local(plan, binary, todo, epochs, parallel, stop, statuses, counter):
    """Runs `todo` (trials) to `epochs` (None: the config's), `parallel` at a time."""
    threads = max(1, available_cores() // parallel)
    queue = list(todo)
    running = []  # (trial, Popen, start time, log file)
    while running or (queue and stop.count == 0):
        while queue and len(running) < parallel and stop.count == 0:
            t = queue.pop(0)
            run_dir = plan.run_dir(t)
            resumed = os.path.exists(os.path.join(run_dir, "checkpoints", "latest"))
            cmd = [binary, plan.base_path]
            for s in plan.set_args(t, epochs) + ["output.dir=" + run_dir, "output.auto_resume=true"]:
                cmd += ["--set", s]
            env = dict(os.environ)
            if not plan.threads_given:
                cmd += ["--set", "train.threads=%d" % threads]
                env["OMP_NUM_THREADS"] = str(threads)
            log = open(plan.log(t), "a", encoding="utf-8")
            log.write("==== sweep %s: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), " ".join(map(shlex.quote, cmd))))
            log.flush()
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            stop.children.append(p)
            counter[0] += 1
            say("[%d] trial %d %s: %s%s" % (counter[0], t.index, t.name, "resumed" if resumed else "started",
                                             "" if epochs is None else " (to %d epochs)" % epochs))
            running.append((t, p, time.time(), log))
        time.sleep(0.1)
        for item in list(running):
            t, p, t0, log = item
            rc = p.poll()
            if rc is None:
                continue
            running.remove(item)
            log.close()
            stop.children.remove(p)
            r = Result(plan.run_dir(t))
            if rc == 0 and r.done:
                say("trial %d %s: done in %.1f s: validation ndcg@100 %.4f (best epoch %s of %s%s)" % (
                    t.index, t.name, time.time() - t0, r.validation(), r.final.get("best_epoch"),
                    r.epochs_run, ", stopped early" if r.stopped_early else ""))
            elif rc == 3 or (stop.count and rc < 0):
                statuses[t.name] = "interrupted (checkpoint kept)" if r.has_checkpoint else "interrupted"
                say("trial %d %s: stopped (exit %d); run the same command again to resume" % (t.index, t.name, rc))
            else:
                why = last_line(plan.log(t))
                statuses[t.name] = "failed (exit %d)" % rc
                with open(plan.failed_marker(t), "w", encoding="utf-8") as f:
                    f.write("exit %d: %s\n" % (rc, why))
                say("trial %d %s: FAILED (exit %d): %s [log %s]" % (t.index, t.name, rc, why, plan.log(t)))


# ------------------------------------------------------------------------------------------------
# Slurm job arrays
# ------------------------------------------------------------------------------------------------
def slurm(cmd, timeout=60):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


def jobs_file(plan):
    return os.path.join(plan.out, "slurm", "jobs.txt")


def queued(job_ids):
    """The jobs (array job ids) that still have a task pending or running."""
    left = []
    for job in job_ids:
        try:
            p = slurm(["squeue", "-h", "-j", job, "-o", "%i %T"])
        except (OSError, subprocess.TimeoutExpired):
            left.append(job)  # cannot tell: assume it still runs
            continue
        if p.returncode == 0 and p.stdout.strip():
            left.append(job)
    return left


def recorded_jobs(plan):
    """{array job id: [trial indices]} of every array this sweep submitted (slurm/jobs.txt)."""
    jobs = {}
    try:
        with open(jobs_file(plan), encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    jobs[parts[0]] = [int(i) for i in parts[2].split("%")[0].split(",")]
    except (OSError, ValueError):
        pass
    return jobs


def wait_jobs(plan, job_ids, stop, todo=None, epochs=None):
    """Polls squeue until none of job_ids has a task left; prints how many of `todo` (default:
    every trial) have trained to `epochs` as it goes."""
    todo = plan.trials if todo is None else todo
    last = None
    while True:
        left = queued(job_ids)
        if not left:
            return True
        if stop.count:
            say("stopped waiting; the jobs %s go on in Slurm: run the same command again to collect"
                % ",".join(left))
            return False
        done = sum(Result(plan.run_dir(t)).reached(epochs) for t in todo)
        if done != last:
            say("waiting for job(s) %s: %d of %d trial(s) finished%s" % (
                ",".join(left), done, len(todo), "" if epochs is None else " to %d epochs" % epochs))
            last = done
        time.sleep(2)


def submit_array(plan, binary, todo, epochs, args):
    """Writes the manifest (every trial; the array picks the `todo` ones) and submits the array."""
    tag = "full" if epochs is None else "e%d" % epochs
    manifest = os.path.join(plan.out, "slurm", "manifest-%s.tsv" % tag)
    with open(manifest, "w", encoding="utf-8") as f:
        for t in plan.trials:
            sets = plan.set_args(t, epochs)
            for s in sets:
                if any(c.isspace() for c in s) or "\t" in s:
                    raise SweepError("'%s': a value with white space cannot go through the Slurm "
                                     "template's RECVAE_SET" % s.split("=")[0])
            f.write("%d\t%s\t%s\t%s\n" % (t.index, t.name, plan.run_dir(t), " ".join(sets)))
    indices = ",".join(str(t.index) for t in todo)
    if args.parallel_given:
        indices += "%%%d" % args.parallel
    cmd = ["sbatch", "--parsable", "--array=" + indices, "--job-name=sweep-" + os.path.basename(plan.out),
           "--ntasks=1", "--cpus-per-task=%d" % args.cpus_per_task, "--chdir=" + os.getcwd(),
           "--output=" + os.path.join(plan.out, "logs", "slurm-%A_%a.out")]
    cmd += shlex.split(args.sbatch_args)
    cmd.append(ARRAY_SCRIPT)
    env = dict(os.environ, SWEEP_MANIFEST=manifest, RECVAE_TEMPLATE=TEMPLATE, RECVAE_BIN=binary,
               CONFIG=plan.base_path, RECVAE_LAUNCH_DIR=LAUNCH_DIR)
    env.pop("RECVAE_SET", None)
    env.pop("OUTPUT_DIR", None)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SweepError("--slurm: sbatch failed to run: %s" % e)
    if p.returncode != 0:
        raise SweepError("--slurm: sbatch refused the array (exit %d): %s" % (p.returncode, p.stderr.strip()))
    job = p.stdout.strip().split(";")[0]
    with open(jobs_file(plan), "a", encoding="utf-8") as f:
        f.write("%s %s %s\n" % (job, tag, indices))
    say("submitted job array %s: %d trial(s)%s, indices %s (manifest %s)" % (
        job, len(todo), "" if epochs is None else " to %d epochs" % epochs, indices, manifest))
    return job


def slurm_outcomes(plan, todo, statuses):
    """After an array: trials without final.json are failed, with the template's exit status."""
    for t in todo:
        r = Result(plan.run_dir(t))
        if r.done:
            continue
        status, why = None, ""
        logs = sorted(f for f in os.listdir(os.path.join(plan.out, "logs"))
                      if f.startswith("slurm-") and f.endswith("_%d.out" % t.index))
        for name in logs:
            path = os.path.join(plan.out, "logs", name)
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if "trainer exited with status" in line:
                        status = line.strip().split("status")[-1].split()[0]
            why = "see %s" % path
        statuses[t.name] = "failed (exit %s)" % (status or "?")
        with open(plan.failed_marker(t), "w", encoding="utf-8") as f:
            f.write("exit %s: %s\n" % (status or "?", why))
        say("trial %d %s: FAILED under Slurm (trainer exit %s); %s" % (t.index, t.name, status or "?", why))


# ------------------------------------------------------------------------------------------------
# The sweep
# ------------------------------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(prog="launch/sweep.sh", usage=USAGE, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", help="the sweep file (YAML)")
    ap.add_argument("--out", help="sweep directory (default: the file's out:, else runs/sweeps/<file name>)")
    ap.add_argument("--set", action="append", default=[], metavar="K=V",
                    help="override for every trial (repeatable; kept in winner.yaml, not in the names)")
    ap.add_argument("--parallel", type=int, default=None, metavar="K",
                    help="trials at a time (local: default 1, threads split; Slurm: array throttle %%K)")
    ap.add_argument("--slurm", action="store_true", help="run the trials as a Slurm job array")
    ap.add_argument("--cpus-per-task", type=int, default=1, metavar="N",
                    help="--slurm: CPUs of each array task (= its train.threads; default 1)")
    ap.add_argument("--sbatch-args", default="", metavar="ARGS",
                    help="--slurm: more sbatch options, e.g. \"--partition=cpu --time=02:00:00\"")
    ap.add_argument("--no-wait", action="store_true",
                    help="--slurm: submit and return (run the same command again to collect and go on)")
    ap.add_argument("--halving", type=int, default=None, metavar="ETA", help="successive halving, ETA >= 2")
    ap.add_argument("--min-epochs", type=int, default=None, metavar="N", help="--halving: epochs of the first rung")
    ap.add_argument("--max-epochs", type=int, default=None, metavar="N", help="--halving: epochs of the last rung")
    ap.add_argument("--trials", type=int, default=None, metavar="N",
                    help="random search: the first N draws (the same trials as the file's first N)")
    ap.add_argument("--retry-failed", action="store_true", help="run failed trials again")
    ap.add_argument("--dry-run", action="store_true", help="check the sweep and list its trials; run nothing")
    ap.add_argument("--report", action="store_true", help="run nothing; write the report from the directories")
    ap.add_argument("--bin", help="recvae_dist (default: $RECVAE_BIN, $BIN_DIR/recvae_dist, build/recvae_dist)")
    # "--sbatch-args --time=1:00:00": its value starts with "--", which argparse would take for an option
    joined, i = [], 0
    while i < len(argv):
        if argv[i] == "--sbatch-args" and i + 1 < len(argv):
            joined.append("--sbatch-args=" + argv[i + 1])
            i += 2
        else:
            joined.append(argv[i])
            i += 1
    args = ap.parse_args(joined)
    args.parallel_given = args.parallel is not None
    if args.parallel is None:
        args.parallel = 1
    if args.parallel < 1:
        raise SweepError("--parallel: at least 1")
    if args.cpus_per_task < 1:
        raise SweepError("--cpus-per-task: at least 1")
    if args.halving is not None and args.halving < 2:
        raise SweepError("--halving: ETA is a whole number >= 2")
    if not args.slurm and (args.no_wait or args.sbatch_args):
        raise SweepError("--no-wait and --sbatch-args go with --slurm")
    return args


def halving_settings(plan, args):
    """(eta, [rung epochs]) or (None, None)."""
    if args.halving is None:
        return None, None
    if plan.model in NO_EPOCHS:
        raise SweepError("--halving: model.type %s is %s" % (plan.model, NO_EPOCHS[plan.model]))
    if "train.epochs" in plan.sweep.keys:
        raise SweepError("space key 'train.epochs': --halving sets the epochs itself; leave it out of the space")
    eta = args.halving
    file_cfg = plan.sweep.halving
    max_e = args.max_epochs or file_cfg.get("max_epochs") or plan.lookup("train.epochs")
    if not isinstance(max_e, int) or max_e < 1:
        raise SweepError("--halving: no maximum epochs (give --max-epochs, halving: {max_epochs: N} or train.epochs)")
    min_e = args.min_epochs or file_cfg.get("min_epochs") or max(1, max_e // (eta * eta))
    if min_e > max_e:
        raise SweepError("--halving: --min-epochs %d is above --max-epochs %d" % (min_e, max_e))
    return eta, rung_epochs(min_e, max_e, eta)


class WallClock:
    """OUT/wall_seconds.txt: the runner's wall time over all its invocations. The file holds the
    earlier invocations' total plus this one's time so far, rewritten every `period` seconds
    (RECVAE_SWEEP_WALL_PERIOD, default 30) and at the end, so that an invocation killed outright
    (SIGKILL, a lost node, a session's end) still counts up to its last write."""

    def __init__(self, plan, t_start, running):
        self.path = os.path.join(plan.out, "wall_seconds.txt")
        self.t_start, self.running = t_start, running
        self.base = 0.0
        try:
            with open(self.path, encoding="utf-8") as f:
                self.base = float(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
        self.lock = threading.Lock()
        self.done = threading.Event()
        if running:
            period = float(os.environ.get("RECVAE_SWEEP_WALL_PERIOD", "30"))
            threading.Thread(target=self.tick, args=(max(0.1, period),), daemon=True).start()

    def tick(self, period):
        while not self.done.wait(period):
            self.write()

    def write(self):
        with self.lock:
            total = self.base + (time.time() - self.t_start if self.running else 0.0)
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("%.1f\n" % total)
            os.replace(tmp, self.path)
            return total

    def close(self):
        """Stops the ticks; returns (this invocation's seconds, the total)."""
        self.done.set()
        total = self.write()
        return time.time() - self.t_start, total


def load_results(plan):
    return {t.name: Result(plan.run_dir(t)) for t in plan.trials}


def failed_set(plan, retry):
    failed = set()
    for t in plan.trials:
        marker = plan.failed_marker(t)
        if os.path.exists(marker):
            if retry or Result(plan.run_dir(t)).done:
                os.remove(marker)
            else:
                failed.add(t.name)
    return failed


class Sweeper:
    """One invocation: runs what the trial directories say is left, rung after rung with halving."""

    def __init__(self, plan, args, binary, eta, rungs):
        self.plan, self.args, self.binary = plan, args, binary
        self.eta, self.rungs = eta, rungs
        self.statuses = {}      # trial name -> why it did not finish (this invocation)
        self.stop = Stop()
        self.counter = [0]      # trials started or resumed
        self.waited = True      # False: a Slurm array was left running (--no-wait, or stopped waiting)
        self.failed = failed_set(plan, args.retry_failed)

    def mark_failed(self):
        self.failed |= {t.name for t in self.plan.trials if os.path.exists(self.plan.failed_marker(t))}

    def pending(self):
        """(trials still to train, the epochs to train them to: None = the config's)."""
        results = load_results(self.plan)
        self.mark_failed()
        if self.rungs:
            walked, todo = halving_walk(self.plan.trials, results, self.eta, self.rungs, self.failed)
            if todo:
                say("rung %d: %d trial(s) to train to %d epochs" % (len(walked) - 1, len(todo), walked[-1].epochs))
            return todo, walked[-1].epochs
        return [t for t in self.plan.trials if not results[t.name].done and t.name not in self.failed], None

    def execute(self, todo, epochs):
        if not self.args.slurm:
            run_local(self.plan, self.binary, todo, epochs, self.args.parallel, self.stop, self.statuses,
                      self.counter)
            return
        jobs = recorded_jobs(self.plan)
        running = queued(list(jobs))
        if running:  # an array of an earlier invocation: wait for it, then decide again
            say("job(s) %s of this sweep are still in the queue" % ",".join(running))
            if self.args.no_wait or not wait_jobs(self.plan, running, self.stop):
                self.waited = False
                return
            indices = {i for j in running for i in jobs[j]}
            slurm_outcomes(self.plan, [t for t in todo if t.index in indices], self.statuses)
            return
        job = submit_array(self.plan, self.binary, todo, epochs, self.args)
        if self.args.no_wait or not wait_jobs(self.plan, [job], self.stop, todo, epochs):
            self.waited = False
            return
        slurm_outcomes(self.plan, todo, self.statuses)

    def run(self):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.stop)
        try:
            while True:
                todo, epochs = self.pending()
                if not todo:
                    return
                self.execute(todo, epochs)
                if self.stop.count or not self.waited:
                    return
                results = load_results(self.plan)
                self.mark_failed()
                if not self.args.slurm and all(not results[t.name].reached(epochs) and t.name not in self.failed
                                               for t in todo):
                    return  # nothing moved (a trial exiting 0 without final.json): do not loop
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)

    def report(self, wall_seconds):
        """Writes the outputs; returns the Report."""
        plan, statuses = self.plan, self.statuses
        results = load_results(plan)
        for t in plan.trials:
            if results[t.name].done or t.name in statuses:
                continue
            if os.path.exists(plan.failed_marker(t)):
                with open(plan.failed_marker(t), encoding="utf-8") as f:
                    statuses[t.name] = "failed (%s)" % f.read().strip().split(":")[0]
            elif results[t.name].has_checkpoint:
                statuses[t.name] = "interrupted (checkpoint kept)"
        halving = None
        if self.rungs:
            walked, _ = halving_walk(plan.trials, results, self.eta, self.rungs, self.failed)
            for i, g in enumerate(walked):
                kept = {t.name for t in g.promoted}
                for t in g.members:
                    if t.name in statuses or not results[t.name].done:
                        continue
                    if not g.complete:
                        statuses[t.name] = "waiting for rung %d (%d epochs)" % (i, g.epochs)
                    elif i == len(self.rungs) - 1:
                        statuses[t.name] = "done (last rung)"
                    elif t.name not in kept:
                        statuses[t.name] = "halved out at rung %d" % i
            halving = {"eta": self.eta, "rungs": walked, "max_epochs": self.rungs[-1],
                       "epochs_full": len(plan.trials) * self.rungs[-1]}
        report = Report(plan, results, statuses, halving)
        report.write_all(wall_seconds)
        return report

    def exit_status(self):
        if self.stop.count:
            return 3
        if not self.waited:
            return 0 if self.args.no_wait else 3
        return 1 if any(s.startswith("failed") for s in self.statuses.values()) else 0


def main(argv):
    t_start = time.time()
    try:
        args = parse_args(argv)
        plan = Plan(args)
        eta, rungs = halving_settings(plan, args)
        binary = trainer_path(args.bin)
        if not args.report:
            n, cached, digests = check_plan(plan, binary, rungs[-1] if rungs else None)
            say("%s: %d trial(s) (%s), model %s; recvae_dist --check accepted all %d override sets%s" % (
                plan.sweep_file, len(plan.trials), plan.sweep.method, plan.model, n,
                " (%d accepted earlier)" % cached if cached else ""))
        if args.slurm and not args.report:
            for tool in ("sbatch", "squeue"):
                if subprocess.run(["sh", "-c", "command -v " + tool], stdout=subprocess.DEVNULL).returncode:
                    raise SweepError("--slurm: %s not found" % tool)
    except SweepError as e:
        print("sweep.sh: %s" % e, file=sys.stderr)
        return 2
    if args.dry_run:
        for t in plan.trials:
            print("%d\t%s\t%s" % (t.index, plan.run_dir(t), " ".join(plan.set_args(t))))
        if rungs:
            print("halving: eta %d, rungs %s epochs" % (eta, ", ".join(map(str, rungs))))
        return 0

    for d in ("trials", "logs", "slurm"):
        os.makedirs(os.path.join(plan.out, d), exist_ok=True)
    sweeper = Sweeper(plan, args, binary, eta, rungs)
    clock = WallClock(plan, t_start, running=not args.report)
    if not args.report:
        remember_checked(plan, digests)
        if sweeper.failed:
            say("%d trial(s) failed earlier and are not run again (--retry-failed does): %s" % (
                len(sweeper.failed), ", ".join(sorted(sweeper.failed))))
        finished = [t for t in plan.trials if Result(plan.run_dir(t)).done]
        if finished:
            say("%d of %d trial(s) have final.json from an earlier invocation: %s" % (
                len(finished), len(plan.trials), "skipped" if not rungs else "kept (rungs replayed from them)"))
        try:
            sweeper.run()
        except SweepError as e:
            clock.close()
            print("sweep.sh: %s" % e, file=sys.stderr)
            return 2

    report = sweeper.report(clock.close())
    w = report.summary()
    say("%d of %d trial(s) finished; report: %s" % (len(report.order), len(plan.trials),
                                                   os.path.join(plan.out, "sweep.md")))
    if w:
        say("winner (by validation ndcg@100 %.4f): trial %d %s; its test ndcg@100 %.4f recall@20 %.4f "
            "recall@50 %.4f; config %s" % (w["validation"]["ndcg@100"], w["index"], w["trial"],
                                           w["test"]["ndcg@100"], w["test"]["recall@20"],
                                           w["test"]["recall@50"], w["winner_yaml"]))
        for key, where in w["at_edge"].items():
            say("winner's %s is %s: the optimum may lie beyond it; widen the space there" % (key, where))
    if rungs:
        say("successive halving: %d epochs trained, %d for a full sweep at %d epochs" % (
            report.epochs_trained(), len(plan.trials) * rungs[-1], rungs[-1]))
    return sweeper.exit_status()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # e.g. --dry-run | head
        sys.stderr.close()
        sys.exit(0)
