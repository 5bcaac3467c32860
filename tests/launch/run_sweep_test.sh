#!/usr/bin/env bash
# run_sweep_test.sh: tests launch/sweep.sh on this machine (the Slurm array:
# tests/slurm/run_sweep_slurm_test.sh).
#
#   bash tests/launch/run_sweep_test.sh MODE BIN_DIR SOURCE_DIR
#
# BIN_DIR holds recvae_dist and recvae_synth (ctest passes the build directory). Exit status:
# 0 pass, 1 fail (the failed check is named), 77 skip (no Python with PyYAML and matplotlib,
# chosen as the launch scripts do: launch/lib/python.sh). Every trial runs with train.threads=1.
#
# MODE local (about 1 minute on 2 cores): the 12-trial random Mult-DAE sweep of
#   configs/sweeps/quickstart-multdae.yaml on the tiny synthetic set (recvae_synth --preset tiny):
#   1. `--parallel 2`: exit 0, 12 trials started; the report (tests/launch/check_sweep.py: sweep.csv
#      and sweep.md with 12 rows ranked by validation NDCG@100, each row's figures those of its
#      final.json, the winner the argmax of validation NDCG@100 read from the final.json files,
#      every trial run with its own overrides, winner.yaml holding the winner's, sweep.png);
#   2. winner.yaml passes `recvae_dist --check`, and training it gives the winner's test NDCG@100;
#   3. the same sweep into a second directory, one trial at a time, stopped with SIGTERM once 2
#      trials have finished and the third has trained an epoch: exit 3, that trial checkpointed
#      (exit 3), fewer than 12 final.json; the same command again: exit 0, the finished trials
#      skipped, only the others run (12 - finished, the stopped one resumed), and every trial's
#      figures equal to those of the uninterrupted sweep (10 digits);
#   4. one trial's final.json deleted: the command again resumes exactly that trial (from its
#      checkpoint) and ends with the same figures; once more: nothing runs;
#   5. a 2-trial sweep whose trainer fails for one trial (a wrapper exiting 1 as on a non-finite
#      loss): exit 1, the failed trial listed as failed below the other, not run again by the same
#      command, run again with --retry-failed;
#   6. a 2-trial sweep whose runner is killed with SIGKILL after the first trial (its wall clock
#      written every 0.2 s): wall_seconds.txt holds at least 0.3 s and at most the time elapsed,
#      and the sweep run again to the end counts it in its total (sweep.json).
# MODE halving (about 1 minute): a 9-trial random sweep (learning rate, width) of Mult-DAE on the
#   tiny set with train.epochs 9, run in full and with `--halving 3 --min-epochs 1` (rungs of 1, 3
#   and 9 epochs: 9, 3 and 1 trials): the same winner with the same test figures, at most half the
#   epochs (counted from every trial's metrics.jsonl: 21 against 81), sweep.json's rungs (9 -> 3 -> 1,
#   each rung promoting its best by the validation NDCG@100 of the epochs so far) and sweep.md's
#   "Epochs trained" line; then the halving sweep again with train.patience=1 (into a third
#   directory): it finishes, every trial's final.json names its best validation epoch, and a trial
#   stopped early has as many metrics.jsonl lines as final.json's epochs_run (not trained further).
# MODE refusals (about 30 s): bad sweep files and options are refused with exit 2 and a message
#   naming the key, before any trial starts (no sweep directory is made): an unknown key, another
#   model's key, an unknown key under fixed:, an empty space, an empty list, a value out of range
#   (the upper bound of a uniform range), a value of the wrong type, an unknown distribution,
#   loguniform from 0, an unknown section, a key the runner sets (output.dir), a key swept and
#   fixed, train.epochs swept with --halving, --halving for EASE; --dry-run lists the trials and
#   starts none; every sweep file of configs/sweeps/ passes --dry-run, and the Gowalla ones but
#   EASE's grid have the same number of trials, at least 12.
# MODE table (about 1 minute): launch/sweep_table.sh over three small sweeps on the tiny set:
#   Mult-VAE (3 widths, its file's halving section), RaCT (2 actor learning rates, its fixed
#   ract.actor_run naming the Mult-VAE sweep's winner/ as the Gowalla file does) and EASE (2
#   lambdas), as one command: exit 0; the Mult-VAE sweep ran with halving (sweep.json); every RaCT
#   trial was trained from the Mult-VAE sweep's winning trial directory (its config.yaml);
#   table.md and table.json hold one row per sweep, each row its sweep.json's winner and figures,
#   ranked by test NDCG@100, with the first's lead named; the same command again starts no trial
#   and writes the same table; a RaCT trial whose config.yaml names another actor makes the table
#   refuse that sweep (exit 1, naming the trial) and still run the others; a bad third sweep file
#   is refused with exit 2 before anything starts (no directory made); --report rewrites the table
#   from the directories alone; SIGTERM to the table's process alone stops the running sweep (exit
#   3, the table written and marked not finished, no process left), and the same command finishes it.
set -uo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: bash tests/launch/run_sweep_test.sh local|halving|refusals|table BIN_DIR SOURCE_DIR" >&2
  exit 1
fi
MODE=$1
BIN_DIR=$(readlink -f "$2")
SRC_DIR=$(readlink -f "$3")
T0=$SECONDS
# shellcheck source=tests/common/script_test.sh
source "$SRC_DIR/tests/common/script_test.sh"

say() { echo "sweep_test($MODE): $*"; }
fail() {
  say "FAIL: $*"
  exit 1
}

case "$MODE" in
  local | halving | refusals | table) ;;
  *) echo "run_sweep_test.sh: MODE is local, halving, refusals or table, got '$MODE'" >&2; exit 1 ;;
esac
for b in recvae_dist recvae_synth; do
  [[ -x "$BIN_DIR/$b" ]] || fail "$BIN_DIR/$b not found or not executable"
done
# shellcheck source=launch/lib/python.sh
source "$SRC_DIR/launch/lib/python.sh"
if ! PY=$(recvae_python_with yaml matplotlib); then
  say "SKIP: no Python with PyYAML and matplotlib ($(recvae_python_hint); python3-yaml)"
  exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/recvae-sweep-test.XXXXXX") || fail "mktemp"
# shellcheck disable=SC2317  # run from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [[ -n "${runner_pid:-}" ]] && kill -0 "$runner_pid" 2>/dev/null; then
    kill -KILL "$runner_pid" 2>/dev/null
  fi
  script_test_finish "$rc"
}
trap cleanup EXIT
script_test_trap_interrupts
export OMP_NUM_THREADS=1 RECVAE_PYTHON=$PY RECVAE_BIN=$BIN_DIR/recvae_dist
cd "$TMP" || fail "cd $TMP"
"$BIN_DIR/recvae_synth" --preset tiny --seed 1 --output "$TMP/tiny.h5" --quiet || fail "recvae_synth failed"
QUICK=$SRC_DIR/configs/sweeps/quickstart-multdae.yaml
SWEEP=$SRC_DIR/launch/sweep.sh
say "python $PY, binaries $BIN_DIR, tmp $TMP"

# Every trial's validation and test figures in DIR, one line per trial (name and six numbers).
figures() {
  "$PY" - "$1" <<'PY'
import json, os, sys
d = os.path.join(sys.argv[1], "trials")
for name in sorted(os.listdir(d)):
    f = json.load(open(os.path.join(d, name, "final.json")))
    print(name, *("%.10f" % x for x in [f["validation"][m] for m in ("ndcg@100", "recall@20", "recall@50")]
                  + [f[m] for m in ("ndcg@100", "recall@20", "recall@50")]))
PY
}
# Epochs trained in DIR: lines of every trial's metrics.jsonl.
epochs_in() { cat "$1"/trials/*/metrics.jsonl | grep -c '"epoch"'; }
finals_in() { find "$1/trials" -name final.json | wc -l; }

# ------------------------------------------------------------------------------------------------
if [[ "$MODE" == local ]]; then
  common=(--set "data.path=$TMP/tiny.h5" --set train.threads=1)
  # --- 1. the sweep, two trials at a time ---
  rc=0
  bash "$SWEEP" "$QUICK" --out "$TMP/a" "${common[@]}" --parallel 2 >"$TMP/a.log" 2>&1 || rc=$?
  cat "$TMP/a.log"
  [[ $rc -eq 0 ]] || fail "sweep --parallel 2 exited with status $rc"
  [[ $(grep -c ': started$' "$TMP/a.log") -eq 12 ]] || fail "expected 12 'started' lines"
  "$PY" "$SRC_DIR/tests/launch/check_sweep.py" "$TMP/a" --trials 12 --png || fail "the report (above)"

  # --- 2. the winner's config ---
  "$BIN_DIR/recvae_dist" "$TMP/a/winner.yaml" --check >"$TMP/check.log" 2>&1 ||
    { cat "$TMP/check.log"; fail "recvae_dist winner.yaml --check refused it"; }
  "$BIN_DIR/recvae_dist" "$TMP/a/winner.yaml" --set output.dir="$TMP/winner-run" >"$TMP/winner.log" 2>&1 ||
    { tail "$TMP/winner.log"; fail "training winner.yaml failed"; }
  "$PY" - "$TMP/a/sweep.json" "$TMP/winner-run/final.json" <<'PY' || fail "winner.yaml did not reproduce the winner"
import json, sys
w = json.load(open(sys.argv[1]))["winner"]
again = json.load(open(sys.argv[2]))
print("sweep_test(local): winner test ndcg@100 %.6f, winner.yaml trained again: %.6f"
      % (w["test"]["ndcg@100"], again["ndcg@100"]))
sys.exit(0 if abs(w["test"]["ndcg@100"] - again["ndcg@100"]) < 1e-6 else 1)
PY

  # --- 3. stopped part-way, then the same command again ---
  bash "$SWEEP" "$QUICK" --out "$TMP/b" "${common[@]}" >"$TMP/b1.log" 2>&1 &
  runner_pid=$!
  deadline=$((SECONDS + 120))
  # once 2 trials have finished and the third has trained an epoch (so that it is stopped inside)
  while ((SECONDS < deadline)) && kill -0 "$runner_pid" 2>/dev/null; do
    if [[ -d "$TMP/b/trials" && $(finals_in "$TMP/b") -ge 2 ]]; then
      running=$(find "$TMP/b/trials" -name metrics.jsonl -size +0 -printf '%h\n' |
        while read -r t; do [[ -f "$t/final.json" ]] || echo "$t"; done)
      [[ -n "$running" ]] && break
    fi
    sleep 0.05
  done
  kill -TERM "$runner_pid" 2>/dev/null
  rc=0
  wait "$runner_pid" || rc=$?
  runner_pid=""
  cat "$TMP/b1.log"
  [[ $rc -eq 3 ]] || fail "the sweep stopped with SIGTERM exited with status $rc, expected 3"
  done_before=$(finals_in "$TMP/b")
  ((done_before >= 2 && done_before < 12)) || fail "$done_before trials finished before the stop, expected 2..11"
  grep -q "got SIGTERM" "$TMP/b1.log" || fail "the runner did not report the SIGTERM"
  grep -q ": stopped (exit 3); run the same command again to resume" "$TMP/b1.log" ||
    fail "no trial was stopped with a checkpoint (exit 3)"
  say "stopped with $done_before of 12 trials finished and one checkpointed"
  rc=0
  bash "$SWEEP" "$QUICK" --out "$TMP/b" "${common[@]}" >"$TMP/b2.log" 2>&1 || rc=$?
  cat "$TMP/b2.log"
  [[ $rc -eq 0 ]] || fail "the resumed sweep exited with status $rc"
  grep -q "^sweep: $done_before of 12 trial(s) have final.json from an earlier invocation: skipped" "$TMP/b2.log" ||
    fail "the resumed sweep did not say it skipped the $done_before finished trials"
  ran=$(grep -c ': \(started\|resumed\)$' "$TMP/b2.log")
  [[ $ran -eq $((12 - done_before)) ]] || fail "the resumed sweep ran $ran trials, expected $((12 - done_before))"
  [[ $(grep -c ': resumed$' "$TMP/b2.log") -eq 1 ]] || fail "the resumed sweep did not resume the stopped trial"
  [[ $(finals_in "$TMP/b") -eq 12 ]] || fail "not every trial finished after the resume"
  diff <(figures "$TMP/a") <(figures "$TMP/b") ||
    fail "the stopped and resumed sweep's figures differ from the uninterrupted one's"
  "$PY" "$SRC_DIR/tests/launch/check_sweep.py" "$TMP/b" --trials 12 || fail "the resumed sweep's report (above)"

  # --- 4. one final.json deleted ---
  victim=$(find "$TMP/a/trials" -name final.json | sort | sed -n 5p)
  rm -f "$victim"
  rc=0
  bash "$SWEEP" "$QUICK" --out "$TMP/a" "${common[@]}" >"$TMP/a2.log" 2>&1 || rc=$?
  cat "$TMP/a2.log"
  [[ $rc -eq 0 ]] || fail "the sweep with a deleted final.json exited with status $rc"
  [[ $(grep -c ': resumed$' "$TMP/a2.log") -eq 1 && $(grep -c ': started$' "$TMP/a2.log") -eq 0 ]] ||
    fail "expected exactly one trial resumed (and none started) after deleting $victim"
  [[ -f "$victim" ]] || fail "$victim was not written again"
  diff <(figures "$TMP/a") <(figures "$TMP/b") || fail "the figures changed after resuming the trial"
  rc=0
  bash "$SWEEP" "$QUICK" --out "$TMP/a" "${common[@]}" >"$TMP/a3.log" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || fail "the finished sweep run again exited with status $rc"
  ! grep -q ': \(started\|resumed\)' "$TMP/a3.log" || fail "the finished sweep run again ran a trial"
  say "resume: a stopped sweep and a deleted final.json complete with the uninterrupted figures"

  # --- 5. a failing trial: the others go on, exit 1; not run again unless --retry-failed ---
  cat >"$TMP/failing_trainer" <<EOF
#!/bin/bash
# recvae_dist, except that a training run with train.lr=0.01 fails as a non-finite loss would
if [[ " \$* " == *" train.lr=0.01 "* && " \$* " != *" --check "* ]]; then
  echo "recvae: rank 0: non-finite loss at epoch 1, pass 1, step 1" >&2
  exit 1
fi
exec "$BIN_DIR/recvae_dist" "\$@"
EOF
  chmod +x "$TMP/failing_trainer"
  cat >"$TMP/failing.yaml" <<EOF
base: $SRC_DIR/configs/multdae/quickstart.yaml
fixed: {train.epochs: 2}
space: {train.lr: [0.001, 0.01]}
EOF
  for attempt in first again retry; do
    extra=()
    [[ $attempt == retry ]] && extra=(--retry-failed)
    rc=0
    RECVAE_BIN=$TMP/failing_trainer bash "$SWEEP" "$TMP/failing.yaml" --out "$TMP/f" "${common[@]}" "${extra[@]}" \
      >"$TMP/f-$attempt.log" 2>&1 || rc=$?
    cat "$TMP/f-$attempt.log"
    [[ $rc -eq 1 ]] || fail "$attempt sweep with a failing trial exited with status $rc, expected 1"
    grep -q '^,1,lr=0.01,failed (exit 1),' "$TMP/f/sweep.csv" ||
      fail "$attempt: sweep.csv does not list lr=0.01 as failed"
    grep -q '^1,0,lr=0.001,done,' "$TMP/f/sweep.csv" || fail "$attempt: sweep.csv does not rank lr=0.001 first"
  done
  grep -q "trial 1 lr=0.01: FAILED (exit 1): recvae: rank 0: non-finite loss" "$TMP/f-first.log" ||
    fail "the failing trial's message was not shown"
  grep -q "lr=0.01: started" "$TMP/f-again.log" && fail "the failed trial was run again without --retry-failed"
  grep -q "lr=0.01: started" "$TMP/f-retry.log" || fail "--retry-failed did not run the failed trial again"
  say "a failing trial: listed as failed, exit 1, skipped when run again, retried with --retry-failed"

  # --- 6. a runner killed outright (SIGKILL) still has its wall time counted ---
  cat >"$TMP/killed.yaml" <<EOF
base: $SRC_DIR/configs/multdae/quickstart.yaml
fixed: {train.epochs: 3}
space: {train.lr: [0.001, 0.003]}
EOF
  t0=$SECONDS
  RECVAE_SWEEP_WALL_PERIOD=0.2 bash "$SWEEP" "$TMP/killed.yaml" --out "$TMP/k" "${common[@]}" >"$TMP/k1.log" 2>&1 &
  runner_pid=$!
  deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)) && [[ ! -d "$TMP/k/trials" || $(finals_in "$TMP/k") -lt 1 ]]; do sleep 0.05; done
  sleep 0.5
  kill -KILL "$runner_pid" 2>/dev/null
  wait "$runner_pid" 2>/dev/null
  runner_pid=""
  pkill -KILL -f "$TMP/k/trials" 2>/dev/null
  elapsed=$((SECONDS - t0 + 1))
  killed_wall=$(cat "$TMP/k/wall_seconds.txt" 2>/dev/null) || fail "the killed runner left no wall_seconds.txt"
  "$PY" -c "import sys; w = float(sys.argv[1]); sys.exit(0 if 0.3 <= w <= float(sys.argv[2]) else 1)" \
    "$killed_wall" "$elapsed" || fail "the killed runner recorded $killed_wall wall seconds, expected 0.3..$elapsed"
  rc=0
  bash "$SWEEP" "$TMP/killed.yaml" --out "$TMP/k" "${common[@]}" >"$TMP/k2.log" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || { cat "$TMP/k2.log"; fail "the sweep after the killed runner exited with status $rc"; }
  "$PY" - "$TMP/k/sweep.json" "$killed_wall" <<'PY' || fail "the killed invocation's wall time was not kept"
import json, sys
j = json.load(open(sys.argv[1]))
this, total, killed = j["wall_seconds_this_invocation"], j["wall_seconds_all_invocations"], float(sys.argv[2])
print("sweep_test(local): wall seconds: killed runner %.1f, this one %.1f, all %.1f" % (killed, this, total))
sys.exit(0 if abs(total - this - killed) <= 0.2 else 1)
PY
  say "a runner killed with SIGKILL: its wall time up to its last write is kept in the total"
fi

# ------------------------------------------------------------------------------------------------
if [[ "$MODE" == halving ]]; then
  cat >"$TMP/halving.yaml" <<EOF
base: $SRC_DIR/configs/multdae/quickstart.yaml
fixed: {train.epochs: 9, train.threads: 1, data.path: $TMP/tiny.h5}
space:
  train.lr: {loguniform: [0.0001, 0.03]}
  multdae.latent_dim: [32, 64, 128]
search: {method: random, trials: 9, seed: 1}
EOF
  rc=0
  bash "$SWEEP" "$TMP/halving.yaml" --out "$TMP/full" --parallel 2 >"$TMP/full.log" 2>&1 || rc=$?
  cat "$TMP/full.log"
  [[ $rc -eq 0 ]] || fail "the full sweep exited with status $rc"
  rc=0
  bash "$SWEEP" "$TMP/halving.yaml" --out "$TMP/halv" --parallel 2 --halving 3 --min-epochs 1 \
    >"$TMP/halv.log" 2>&1 || rc=$?
  cat "$TMP/halv.log"
  [[ $rc -eq 0 ]] || fail "the halving sweep exited with status $rc"
  "$PY" "$SRC_DIR/tests/launch/check_sweep.py" "$TMP/full" --trials 9 || fail "the full sweep's report (above)"
  "$PY" "$SRC_DIR/tests/launch/check_sweep.py" "$TMP/halv" --trials 9 --png ||
    fail "the halving sweep's report (above)"
  full_epochs=$(epochs_in "$TMP/full")
  halv_epochs=$(epochs_in "$TMP/halv")
  say "epochs trained: full sweep $full_epochs, successive halving $halv_epochs"
  [[ $full_epochs -eq 81 ]] || fail "the full sweep trained $full_epochs epochs, expected 9 x 9"
  ((2 * halv_epochs <= full_epochs)) || fail "halving trained $halv_epochs epochs, more than half of $full_epochs"
  grep -q "^Epochs trained: $halv_epochs, against 81 for every trial at 9 epochs" "$TMP/halv/sweep.md" ||
    fail "sweep.md does not report 'Epochs trained: $halv_epochs, against 81 ...'"
  "$PY" - "$TMP/full" "$TMP/halv" <<'PY' || fail "halving checks (above)"
import json, os, sys
full, halv = (json.load(open(os.path.join(d, "sweep.json"))) for d in sys.argv[1:3])
errors = []
wf, wh = full["winner"], halv["winner"]
if wf["trial"] != wh["trial"]:
    errors.append("halving chose %s, the full sweep %s" % (wh["trial"], wf["trial"]))
elif any(abs(wf["test"][m] - wh["test"][m]) > 1e-9 for m in wf["test"]):
    errors.append("the winner's test figures differ: %s vs %s" % (wh["test"], wf["test"]))
rungs = halv["halving"]["rungs"]
if [(r["epochs"], len(r["trials"]), len(r["promoted"])) for r in rungs] != [(1, 9, 3), (3, 3, 1), (9, 1, 0)]:
    errors.append("rungs %s, expected 1/3/9 epochs with 9/3/1 trials"
                  % [(r["epochs"], len(r["trials"])) for r in rungs])
# each rung promoted its best by the validation ndcg@100 of the epochs so far, read from metrics.jsonl
for r in rungs[:-1]:
    scores = {}
    for name in r["trials"]:
        best = None
        for line in open(os.path.join(sys.argv[2], "trials", name, "metrics.jsonl")):
            m = json.loads(line)
            if m["epoch"] <= r["epochs"]:
                v = m["validation"]["ndcg@100"]
                best = v if best is None or v > best else best
        scores[name] = best
    want = sorted(scores, key=lambda n: -scores[n])[:len(r["promoted"])]
    if sorted(want) != sorted(r["promoted"]):
        errors.append("rung at %d epochs promoted %s, the best are %s" % (r["epochs"], r["promoted"], want))
for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
PY
  say "halving: the full sweep's winner with $halv_epochs of $full_epochs epochs"

  # with train.patience (stop a trial when validation NDCG@100 has not improved for 1 epoch)
  rc=0
  bash "$SWEEP" "$TMP/halving.yaml" --out "$TMP/patience" --halving 3 --min-epochs 1 --parallel 2 \
    --set train.patience=1 >"$TMP/patience.log" 2>&1 || rc=$?
  cat "$TMP/patience.log"
  [[ $rc -eq 0 ]] || fail "the halving sweep with train.patience=1 exited with status $rc"
  "$PY" - "$TMP/patience" <<'PY' || fail "patience checks (above)"
import json, os, sys
d = os.path.join(sys.argv[1], "trials")
errors, early = [], 0
for name in sorted(os.listdir(d)):
    f = json.load(open(os.path.join(d, name, "final.json")))
    lines = [json.loads(l) for l in open(os.path.join(d, name, "metrics.jsonl"))]
    if f.get("stopped_early"):
        early += 1
        if f.get("epochs_run") != len(lines):
            errors.append("%s stopped early after %s epochs but metrics.jsonl has %d"
                          % (name, f.get("epochs_run"), len(lines)))
    best = max(lines, key=lambda m: m["validation"]["ndcg@100"])
    if abs(best["validation"]["ndcg@100"] - f["validation"]["ndcg@100"]) > 1e-9 or best["epoch"] != f["best_epoch"]:
        errors.append("%s: final.json's best epoch %s is not the best validation epoch %s"
                      % (name, f["best_epoch"], best["epoch"]))
print("sweep_test(halving): patience 1: %d of %d trials stopped early" % (early, len(os.listdir(d))))
for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
PY
fi

# ------------------------------------------------------------------------------------------------
if [[ "$MODE" == refusals ]]; then
  base=$SRC_DIR/configs/multdae/quickstart.yaml
  n=0
  # refuse NAME KEY [EXTRA ARGS...]: the sweep file $TMP/NAME.yaml must be refused naming KEY.
  refuse() {
    local name=$1 key=$2 rc=0
    shift 2
    bash "$SWEEP" "$TMP/$name.yaml" --out "$TMP/out-$name" --set "data.path=$TMP/tiny.h5" "$@" \
      >"$TMP/$name.log" 2>&1 || rc=$?
    [[ $rc -eq 2 ]] || { cat "$TMP/$name.log"; fail "$name: exit status $rc, expected 2"; }
    grep -qF -- "$key" "$TMP/$name.log" || { cat "$TMP/$name.log"; fail "$name: the message does not name '$key'"; }
    [[ ! -e "$TMP/out-$name" ]] || fail "$name: the sweep directory was made (a trial may have started)"
    say "$name refused: $(tail -n 1 "$TMP/$name.log" | cut -c1-150)"
    n=$((n + 1))
  }
  # sweep NAME: writes $TMP/NAME.yaml from stdin, after a base: line
  sweep_file() { { echo "base: $base"; cat; } >"$TMP/$1.yaml"; }

  sweep_file unknown_key <<<'space: {multdae.latnt_dim: [64, 128]}'
  refuse unknown_key multdae.latnt_dim
  sweep_file other_model <<<'space: {cdae.hidden_dim: [64, 128]}'
  refuse other_model cdae.hidden_dim
  printf 'fixed: {train.epoch: 3}\nspace: {multdae.latent_dim: [64, 128]}\n' | sweep_file fixed_unknown
  refuse fixed_unknown train.epoch
  sweep_file empty_space <<<'space: {}'
  refuse empty_space "'space'"
  sweep_file empty_list <<<'space: {train.lr: []}'
  refuse empty_list train.lr
  printf 'space: {train.dropout: {uniform: [0.1, 1.5]}}\nsearch: {trials: 4}\n' | sweep_file out_of_range
  refuse out_of_range train.dropout
  sweep_file wrong_type <<<'space: {multdae.latent_dim: [64, wide]}'
  refuse wrong_type multdae.latent_dim
  printf 'space: {train.lr: {normal: [0.001, 0.01]}}\nsearch: {trials: 4}\n' | sweep_file unknown_distribution
  refuse unknown_distribution train.lr
  printf 'space: {train.lr: {loguniform: [0, 0.01]}}\nsearch: {trials: 4}\n' | sweep_file log_from_zero
  refuse log_from_zero train.lr
  printf 'spaces: {train.lr: [0.001]}\nspace: {train.lr: [0.001, 0.01]}\n' | sweep_file unknown_section
  refuse unknown_section spaces
  sweep_file runner_key <<<'space: {output.dir: [a, b]}'
  refuse runner_key output.dir
  printf 'fixed: {train.lr: 0.001}\nspace: {train.lr: [0.001, 0.01]}\n' | sweep_file swept_and_fixed
  refuse swept_and_fixed train.lr
  sweep_file halving_epochs <<<'space: {train.epochs: [2, 4]}'
  refuse halving_epochs train.epochs --halving 3
  printf 'base: %s\nspace: {ease.lambda: [10, 100]}\n' "$SRC_DIR/configs/ease/quickstart.yaml" >"$TMP/ease_halving.yaml"
  refuse ease_halving "--halving" --halving 2
  say "$n bad sweep files refused with exit 2, naming the key, nothing started"

  # --dry-run: lists the trials, starts none
  rc=0
  bash "$SWEEP" "$QUICK" --out "$TMP/dry" --set "data.path=$TMP/tiny.h5" --dry-run >"$TMP/dry.log" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || { cat "$TMP/dry.log"; fail "--dry-run exited with status $rc"; }
  [[ $(grep -c "^[0-9]*	$TMP/dry/trials/" "$TMP/dry.log") -eq 12 ]] ||
    { cat "$TMP/dry.log"; fail "--dry-run did not list 12 trials"; }
  [[ ! -e "$TMP/dry" ]] || fail "--dry-run made the sweep directory"

  # The shipped sweep files are accepted, and the fair table's (gowalla-*) give every model the
  # same number of trials, at least 12 (issue 28); EASE, a closed form, takes its whole grid.
  fair_trials=""
  for f in "$SRC_DIR"/configs/sweeps/*.yaml; do
    name=$(basename "$f" .yaml)
    rc=0
    bash "$SWEEP" "$f" --out "$TMP/shipped/$name" --dry-run >"$TMP/$name.dry.log" 2>&1 || rc=$?
    [[ $rc -eq 0 ]] || { cat "$TMP/$name.dry.log"; fail "the shipped $name.yaml was refused (status $rc)"; }
    count=$(grep -c "^[0-9]*	$TMP/shipped/$name/trials/" "$TMP/$name.dry.log")
    [[ $name == gowalla-* && $name != gowalla-ease ]] || continue
    [[ $count -ge 12 ]] || fail "$name.yaml has $count trials, fewer than 12"
    [[ -z $fair_trials || $count -eq $fair_trials ]] || fail "$name.yaml has $count trials, another Gowalla sweep $fair_trials"
    fair_trials=$count
  done
  [[ -n $fair_trials ]] || fail "no gowalla-*.yaml in configs/sweeps"
  say "every shipped sweep file accepted; the Gowalla sweeps have $fair_trials trials each"
  bash "$SWEEP" --help >/dev/null || fail "sweep.sh --help failed"

  # A winner at an end of its space is flagged (space.Param.edge; check_sweep.py checks the flag in
  # the reports of the local and halving modes): the ends of a list of 3+ numbers, the outer 5% of
  # a range (log scale for loguniform); never a choice, a list of words or of two values.
  "$PY" - "$SRC_DIR/launch/sweep" <<'PY' || fail "space.Param.edge (above)"
import sys
sys.path.insert(0, sys.argv[1])
from space import Param
cases = [([64, 128, 256, 512], 512, "the largest listed value"), ([64, 128, 256, 512], 64, "the smallest listed value"),
         ([64, 128, 256, 512], 256, None), ([1, 2], 2, None), (["a", "b", "c"], "c", None),
         ({"choice": [1, 2, 3]}, 3, None), ({"loguniform": [0.1, 100]}, 0.11, "the lowest 5% of the range"),
         ({"loguniform": [0.1, 100]}, 4.2, None), ({"loguniform": [0.1, 100]}, 85, "the highest 5% of the range"),
         ({"uniform": [0.0, 1.0]}, 0.5, None), ({"uniform": [0.0, 1.0]}, 0.97, "the highest 5% of the range"),
         ({"int_uniform": [1, 100]}, 3, "the lowest 5% of the range")]
bad = [(spec, v, Param("k", spec).edge(v), want) for spec, v, want in cases if Param("k", spec).edge(v) != want]
for spec, v, got, want in bad:
    print("  edge of %r at %r: %r, expected %r" % (spec, v, got, want))
sys.exit(1 if bad else 0)
PY
  say "a winner at an end of its space is flagged"
fi

# ------------------------------------------------------------------------------------------------
if [[ "$MODE" == table ]]; then
  TABLE=$SRC_DIR/launch/sweep_table.sh
  cat >"$TMP/t-multvae.yaml" <<'EOF2'
base: configs/multvae/quickstart.yaml
fixed: {train.epochs: 3, multvae.hidden_dim: 64}
space:
  multvae.latent_dim: [8, 16, 32]
halving: {eta: 3, min_epochs: 1, max_epochs: 3}
EOF2
  cat >"$TMP/t-ract.yaml" <<'EOF2'
base: configs/ract/quickstart.yaml
fixed:
  ract.actor_epochs: 0
  ract.actor_run: runs/sweeps/t-multvae/winner
  ract.critic_epochs: 1
  ract.ac_epochs: 2
space:
  ract.actor_lr: [0.00001, 0.0001]
EOF2
  cat >"$TMP/t-ease.yaml" <<'EOF2'
base: configs/ease/quickstart.yaml
space:
  ease.lambda: [10, 100]
EOF2
  sweeps=("$TMP/t-multvae.yaml" "$TMP/t-ract.yaml" "$TMP/t-ease.yaml")
  common=(--set "data.path=$TMP/tiny.h5" --set train.threads=1)
  started() { grep -c ': started' "$1"; }

  # --- 1. the table in one command ---
  rc=0
  bash "$TABLE" "${sweeps[@]}" --out "$TMP/t" "${common[@]}" >"$TMP/t1.log" 2>&1 || rc=$?
  cat "$TMP/t1.log"
  [[ $rc -eq 0 ]] || fail "sweep_table.sh exited with status $rc"
  [[ $(started "$TMP/t1.log") -eq 7 ]] || fail "expected 7 trials started (3 + 2 + 2), got $(started "$TMP/t1.log")"
  check_table() {
    "$PY" - "$TMP/t" "$SRC_DIR/launch/sweep" <<'PY'
import json, os, sys, yaml
out = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from sweep import NO_EPOCHS
table = json.load(open(os.path.join(out, "table.json")))
rows = table["rows"]
bad = []
if [r["sweep"] for r in rows] != sorted([r["sweep"] for r in rows], key=lambda n: -next(
        r["winner"]["test"]["ndcg@100"] for r in rows if r["sweep"] == n)):
    bad.append("rows not ranked by the winners' test ndcg@100")
if sorted(r["sweep"] for r in rows) != ["t-ease", "t-multvae", "t-ract"]:
    bad.append("rows %s" % [r["sweep"] for r in rows])
md = open(os.path.join(out, "table.md")).read()
for r in rows:
    doc = json.load(open(os.path.join(out, r["sweep"], "sweep.json")))
    w = doc["winner"]
    if not r["finished"] or r["trials_done"] != doc["trials_planned"]:
        bad.append("%s: not finished" % r["sweep"])
    if r["winner"]["trial"] != w["trial"] or r["winner"]["test"] != w["test"] or r["winner"]["validation"] != w["validation"]:
        bad.append("%s: the row's winner is not sweep.json's" % r["sweep"])
    best = max(doc["trials"], key=lambda t: t["validation_ndcg@100"] if t["validation_ndcg@100"] is not None else -1)
    if best["trial"] != w["trial"]:
        bad.append("%s: winner %s is not the best by validation (%s)" % (r["sweep"], w["trial"], best["trial"]))
    line = [l for l in md.splitlines() if "(`%s`)" % r["sweep"] in l]
    if len(line) != 1 or "%.4f" % w["test"]["ndcg@100"] not in line[0] or "%.4f" % w["validation"]["ndcg@100"] not in line[0]:
        bad.append("%s: table.md's row %s" % (r["sweep"], line))
    elif r["model"] not in NO_EPOCHS:
        # A winner whose best epoch is its last was stopped by its budget, not by patience.
        cell = "%d of %d" % (w["best_epoch"], w["epochs"])
        if ("| " + cell) not in line[0] or ("still improving" in line[0]) != (w["best_epoch"] == w["epochs"]):
            bad.append("%s: best epoch %s of %s shown as %s" % (r["sweep"], w["best_epoch"], w["epochs"], line[0]))
first, second = rows[0], rows[1]
lead = "%+.4f over %s" % (first["winner"]["test"]["ndcg@100"] - second["winner"]["test"]["ndcg@100"], second["model"])
if lead not in md:
    bad.append("table.md does not name the lead (%s)" % lead)
mv = json.load(open(os.path.join(out, "t-multvae", "sweep.json")))
if not mv.get("halving") or mv["halving"]["eta"] != 3:
    bad.append("t-multvae ran without its file's halving")
actor = os.path.realpath(mv["winner"]["run_dir"])
for name in os.listdir(os.path.join(out, "t-ract", "trials")):
    cfg = yaml.safe_load(open(os.path.join(out, "t-ract", "trials", name, "config.yaml")))
    if os.path.realpath(cfg["ract"]["actor_run"]) != actor:
        bad.append("RaCT trial %s trained from %s, not %s" % (name, cfg["ract"]["actor_run"], actor))
for b in bad:
    print("  " + b)
print("sweep_test(table): %s first (test ndcg@100 %.4f), RaCT from %s" % (
    first["sweep"], first["winner"]["test"]["ndcg@100"], os.path.basename(actor)))
sys.exit(1 if bad else 0)
PY
  }
  check_table || fail "the table (above)"
  cp "$TMP/t/table.md" "$TMP/table1.md"

  # --- 2. the same command again: nothing runs, the same table ---
  bash "$TABLE" "${sweeps[@]}" --out "$TMP/t" "${common[@]}" >"$TMP/t2.log" 2>&1 || { cat "$TMP/t2.log"; fail "second run exited non-zero"; }
  [[ $(started "$TMP/t2.log") -eq 0 ]] || { cat "$TMP/t2.log"; fail "the second run started trials"; }
  diff <(grep '^|' "$TMP/table1.md") <(grep '^|' "$TMP/t/table.md") || fail "the second run changed the table"
  rm "$TMP/t/table.md" "$TMP/t/table.json"
  bash "$TABLE" --report --out "$TMP/t" >"$TMP/t3.log" 2>&1 || { cat "$TMP/t3.log"; fail "--report failed"; }
  diff <(grep '^|' "$TMP/table1.md") <(grep '^|' "$TMP/t/table.md") || fail "--report wrote another table"
  say "the same command again ran nothing; --report rewrote the same table"

  # --- 3. a RaCT trial trained from another actor is not kept as finished ---
  cfg=$(ls -d "$TMP"/t/t-ract/trials/*/ | head -n 1)config.yaml
  sed -i "s|actor_run: .*|actor_run: $TMP/elsewhere|" "$cfg"
  rc=0
  bash "$TABLE" "${sweeps[@]}" --out "$TMP/t" "${common[@]}" >"$TMP/t4.log" 2>&1 || rc=$?
  [[ $rc -eq 1 ]] || { cat "$TMP/t4.log"; fail "a RaCT trial from another actor: exit $rc, expected 1"; }
  grep -q "t-ract: not started: ract.actor_run: trial .* was trained from $TMP/elsewhere" "$TMP/t4.log" ||
    { cat "$TMP/t4.log"; fail "no message naming the trial trained from another actor"; }
  grep -q "sweep 3 of 3" "$TMP/t4.log" || fail "the sweep after the refused one did not run"
  say "a RaCT sweep with a trial from another actor is refused, naming it; the others go on"

  # --- 4. a bad sweep file: nothing starts ---
  printf 'base: configs/ease/quickstart.yaml\nspace:\n  ease.lamda: [1, 2]\n' >"$TMP/t-bad.yaml"
  rc=0
  bash "$TABLE" "$TMP/t-ease.yaml" "$TMP/t-bad.yaml" --out "$TMP/u" "${common[@]}" >"$TMP/t5.log" 2>&1 || rc=$?
  [[ $rc -eq 2 ]] || { cat "$TMP/t5.log"; fail "a bad sweep file: exit $rc, expected 2"; }
  grep -q "ease.lamda" "$TMP/t5.log" || { cat "$TMP/t5.log"; fail "the refusal does not name the key"; }
  [[ ! -e "$TMP/u" ]] || fail "a refused table made its directory"
  bash "$TABLE" --help >/dev/null || fail "sweep_table.sh --help failed"
  say "a bad sweep file is refused before any sweep starts, naming the key"

  # --- 5. SIGTERM to the table alone (as from timeout or a scheduler) reaches the running sweep ---
  bash "$TABLE" "$TMP/t-multvae.yaml" "$TMP/t-ease.yaml" --out "$TMP/w" "${common[@]}" >"$TMP/t6.log" 2>&1 &
  runner_pid=$!
  for _ in $(seq 1 300); do grep -q ': started' "$TMP/t6.log" 2>/dev/null && break; sleep 0.1; done
  grep -q ': started' "$TMP/t6.log" || { cat "$TMP/t6.log"; fail "no trial started within 30 s"; }
  kill -TERM "$runner_pid"
  rc=0; wait "$runner_pid" || rc=$?
  runner_pid=
  [[ $rc -eq 3 ]] || { cat "$TMP/t6.log"; fail "SIGTERM to the table: exit $rc, expected 3"; }
  grep -qF "(**not finished**)" "$TMP/w/table.md" || { cat "$TMP/w/table.md"; fail "the stopped table is not marked so"; }
  [[ ! -e "$TMP/w/t-ease" ]] || fail "the sweep after the stopped one was started"
  sleep 0.5
  ! pgrep -f "$TMP/w/" >/dev/null || fail "processes of the stopped table are left: $(pgrep -af "$TMP/w/")"
  bash "$TABLE" "$TMP/t-multvae.yaml" "$TMP/t-ease.yaml" --out "$TMP/w" "${common[@]}" >"$TMP/t7.log" 2>&1 ||
    { cat "$TMP/t7.log"; fail "the stopped table run again did not finish"; }
  ! grep -qF "(**not finished**)" "$TMP/w/table.md" || fail "the table run again to the end is still marked not finished"
  say "SIGTERM to the table stops its sweep (exit 3, table written, nothing left running); run again, it finishes"
fi

say "PASS in $((SECONDS - T0)) s"
exit 0
