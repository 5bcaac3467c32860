#!/bin/bash
# run_sweep_slurm_test.sh: launch/sweep.sh --slurm on a real, private, single-node Slurm: the
# 12-trial Mult-DAE sweep of configs/sweeps/quickstart-multdae.yaml as a job array.
#
#   bash tests/slurm/run_sweep_slurm_test.sh RECVAE_DIST_BIN RECVAE_SYNTH_BIN [SOURCE_DIR]
#
# Exit status: 0 pass, 1 fail (the failed check is named; job outputs and daemon logs are
# printed), 77 skip (as tests/slurm/run_slurm_test.sh: not root, no Slurm and no way to install
# it, fewer than 2 CPUs, no pmix plugin; or no Python with PyYAML). About 1.5 minutes on 2 cores.
#
# What it does, under one temporary directory (tests/common/slurm_cluster.sh starts the cluster):
#   1. the tiny synthetic data set (recvae_synth --preset tiny);
#   2. `launch/sweep.sh configs/sweeps/quickstart-multdae.yaml --slurm --out DIR --set
#      data.path=TINY --set train.epochs=4`: one array job with 12 tasks (indices 0-11, one per
#      trial, through launch/sweep/array.sbatch and launch/slurm_recvae.sbatch with srun
#      --mpi=pmix), waited for; must exit 0. Checked: one job in DIR/slurm/jobs.txt with indices
#      0-11, every task's output names its trial and the template's "trial exited with status
#      0", and the report (tests/launch/check_sweep.py: 12 rows ranked by validation, each row's
#      figures those of its final.json, the winner the argmax of validation NDCG@100, every trial
#      run with its own overrides, winner.yaml); winner.yaml passes recvae_dist --check;
#   3. the same command again: nothing submitted (every trial skipped), exit 0;
#   4. requeue inside an array: a 2-trial grid (train.epochs 40) with --no-wait; once trial 0's
#      metrics.jsonl has an epoch, `scancel --signal=USR1 --batch JOB_0` signals that task's
#      batch shell: the template forwards it, the trainer checkpoints and exits 3, the task is
#      requeued and resumes. The same command (without --no-wait) then waits for the array and
#      reports: both trials finished, task 0's output shows the requeue and "resumed from";
#   5. successive halving (--halving 3 --min-epochs 1, 9 trials of train.epochs 9): one array per
#      rung (9, 3 and 1 tasks, to 1, 3 and 9 epochs, each submitted once the previous rung has
#      finished), 21 epochs trained against 81, and the report checked.
set -uo pipefail

# shellcheck source=tests/common/slurm_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/slurm_cluster.sh"
say() { echo "sweep_slurm_test: $*"; }
slurm_test_args "usage: bash tests/slurm/run_sweep_slurm_test.sh RECVAE_DIST_BIN RECVAE_SYNTH_BIN [SOURCE_DIR]" "$@"
# shellcheck source=launch/lib/python.sh
source "$SRC_DIR/launch/lib/python.sh"
SWEEP=$SRC_DIR/launch/sweep.sh
BUDGET_S=${TEST_BUDGET_S:-400}
T0=$SECONDS
PY=$(recvae_python_with yaml) || skip "no Python with PyYAML (launch/sweep.sh needs it)"
slurm_test_start recvae-sweep-slurm

timeout "$(slurm_limit 60)" "$SYNTH_BIN" --preset tiny --seed 1 --output "$TMP/tiny.h5" --quiet ||
  fail "recvae_synth --preset tiny failed"

# The sweep runner with this cluster's settings; its jobs carry the cluster's marker.
sweep() {
  (
    cd "$TMP/work" || exit 1
    timeout "$(slurm_limit 300)" env SLURM_CONF="$SLURM_TEST_CONF" RECVAE_SLURM_TEST_TAG="$SLURM_TEST_TAG" \
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 RECVAE_BIN="$DIST_BIN" \
      RECVAE_PYTHON="$PY" bash "$SWEEP" "$@" --slurm --sbatch-args "--time=00:10:00"
  )
}

# --- 2. the 12-trial sweep as an array -------------------------------------------------------------
OUT=$TMP/work/sw
rc=0
sweep "$SRC_DIR/configs/sweeps/quickstart-multdae.yaml" --out "$OUT" --set data.path="$TMP/tiny.h5" \
  --set train.epochs=4 >"$TMP/work/sweep1.log" 2>&1 || rc=$?
cat "$TMP/work/sweep1.log"
[[ $rc -eq 0 ]] || fail "launch/sweep.sh --slurm exited with status $rc"
[[ $(wc -l <"$OUT/slurm/jobs.txt") -eq 1 ]] || fail "expected one array job in $OUT/slurm/jobs.txt"
read -r job tag indices <"$OUT/slurm/jobs.txt"
[[ "$indices" == "0,1,2,3,4,5,6,7,8,9,10,11" ]] || fail "array indices '$indices' ($tag), expected 0..11"
for i in $(seq 0 11); do
  out=$OUT/logs/slurm-${job}_$i.out
  [[ -f "$out" ]] || fail "no output file $out for array task $i"
  trial=$(awk -F'\t' -v i="$i" '$1 == i { print $2 }' "$OUT/slurm/manifest-$tag.tsv")
  grep -q "sweep_array: .*task $i of array $job: trial $trial\$" "$out" || fail "task $i did not run trial $trial"
  grep -q -- "srun .*--mpi=pmix" "$out" || fail "task $i: the template did not use srun --mpi=pmix"
  grep -q "trainer exited with status 0" "$out" || fail "task $i: no 'trainer exited with status 0'"
done
"$PY" "$SRC_DIR/tests/launch/check_sweep.py" "$OUT" --trials 12 || fail "the report of the Slurm sweep (above)"
"$DIST_BIN" "$OUT/winner.yaml" --check >"$TMP/work/check.log" 2>&1 ||
  { cat "$TMP/work/check.log"; fail "recvae_dist winner.yaml --check refused the winner's config"; }
say "12 trials as array job $job: report and winner.yaml checked at $((SECONDS - T0)) s"

# --- 3. again: nothing to do ------------------------------------------------------------------------
rc=0
sweep "$SRC_DIR/configs/sweeps/quickstart-multdae.yaml" --out "$OUT" --set data.path="$TMP/tiny.h5" \
  --set train.epochs=4 >"$TMP/work/sweep2.log" 2>&1 || rc=$?
cat "$TMP/work/sweep2.log"
[[ $rc -eq 0 ]] || fail "the repeated sweep exited with status $rc"
grep -q "12 of 12 trial(s) have final.json" "$TMP/work/sweep2.log" ||
  fail "the repeated sweep did not skip the 12 trials"
[[ $(wc -l <"$OUT/slurm/jobs.txt") -eq 1 ]] || fail "the repeated sweep submitted another job"

# --- 4. a task preempted inside the array: requeued and resumed ----------------------------------------
cat >"$TMP/requeue.yaml" <<EOF
base: $SRC_DIR/configs/multdae/quickstart.yaml
fixed: {train.epochs: 40, data.path: $TMP/tiny.h5}
space: {multdae.latent_dim: [16, 32]}
EOF
OUT2=$TMP/work/sw-requeue
rc=0
sweep "$TMP/requeue.yaml" --out "$OUT2" --no-wait >"$TMP/work/sweep3.log" 2>&1 || rc=$?
cat "$TMP/work/sweep3.log"
[[ $rc -eq 0 ]] || fail "sweep --no-wait exited with status $rc"
read -r job2 _ _ <"$OUT2/slurm/jobs.txt"
metrics=$OUT2/trials/latent_dim=16/metrics.jsonl
deadline=$((SECONDS + $(slurm_limit 120)))
while ((SECONDS < deadline)); do
  [[ -s "$metrics" ]] && break
  sleep 0.2
done
[[ -s "$metrics" ]] || fail "trial 0 of array $job2 wrote no epoch within the deadline"
slurm_cmd 10 scancel --signal=USR1 --batch "${job2}_0" || fail "scancel --signal=USR1 --batch ${job2}_0 failed"
say "SIGUSR1 sent to array task ${job2}_0 at $((SECONDS - T0)) s ($(wc -l <"$metrics") epoch(s) done)"
rc=0
sweep "$TMP/requeue.yaml" --out "$OUT2" >"$TMP/work/sweep4.log" 2>&1 || rc=$?
cat "$TMP/work/sweep4.log"
[[ $rc -eq 0 ]] || fail "the sweep collecting the requeued array exited with status $rc"
grep -q "still in the queue" "$TMP/work/sweep4.log" || fail "the second invocation did not wait for the running array"
out0=$OUT2/logs/slurm-${job2}_0.out
grep -q "trainer exited with status 3" "$out0" || fail "task 0: the trainer did not exit 3 after SIGUSR1"
grep -q "checkpointed; requeueing job" "$out0" || fail "task 0: the template did not requeue it"
grep -q "resumed from" "$out0" || fail "task 0: the requeued task did not resume from its checkpoint"
"$PY" "$SRC_DIR/tests/launch/check_sweep.py" "$OUT2" --trials 2 || fail "the report of the requeued sweep (above)"
say "array task ${job2}_0: SIGUSR1 -> checkpoint -> exit 3 -> requeue -> resumed; sweep complete"

# --- 5. successive halving: one array per rung -------------------------------------------------------
cat >"$TMP/halving.yaml" <<EOF
base: $SRC_DIR/configs/multdae/quickstart.yaml
fixed: {train.epochs: 9, data.path: $TMP/tiny.h5}
space:
  train.lr: {loguniform: [0.0001, 0.03]}
  multdae.latent_dim: [32, 64, 128]
search: {method: random, trials: 9, seed: 1}
EOF
OUT3=$TMP/work/sw-halving
rc=0
sweep "$TMP/halving.yaml" --out "$OUT3" --halving 3 --min-epochs 1 >"$TMP/work/sweep5.log" 2>&1 || rc=$?
cat "$TMP/work/sweep5.log"
[[ $rc -eq 0 ]] || fail "the halving sweep under Slurm exited with status $rc"
rungs=$(awk '{ print $2 ":" gsub(/,/, ",", $3) + 1 }' "$OUT3/slurm/jobs.txt" | tr '\n' ' ')
[[ "$rungs" == "e1:9 e3:3 e9:1 " ]] || fail "arrays per rung '$rungs', expected 'e1:9 e3:3 e9:1 ' (epochs:tasks)"
"$PY" "$SRC_DIR/tests/launch/check_sweep.py" "$OUT3" --trials 9 || fail "the report of the halving sweep (above)"
grep -q "^Epochs trained: 21, against 81 for every trial at 9 epochs" "$OUT3/sweep.md" ||
  fail "the halving sweep under Slurm did not train 21 epochs"
say "halving: arrays of 9, 3 and 1 tasks (to 1, 3 and 9 epochs), 21 epochs against 81"

say "PASS in $((SECONDS - T0)) s"
exit 0
