#!/bin/bash
# run_slurm_test.sh: runs launch/slurm_recvae.sbatch on a real, private, single-node Slurm.
#
#   bash tests/slurm/run_slurm_test.sh RECVAE_DIST_BIN RECVAE_SYNTH_BIN [SOURCE_DIR]
#
# Exit status: 0 pass, 1 fail (the failed check is named; job output and daemon logs are
# printed), 77 skip (not root, or Debian's slurmctld/slurmd/slurm-client/munge cannot be
# installed, or the node has fewer than 2 CPUs).
#
# What it does, all as root, everything under one temporary directory:
#   1. starts a private single-node Slurm (tests/common/slurm_cluster.sh, shared with the sweep
#      test: installs Debian's packages when missing, writes a munge key and a slurm.conf for one
#      node with JobRequeue=1 and MpiDefault=none, so that the template has to choose --mpi=pmix
#      itself, and cred_expire=10, so that a requeued job starts again after ~11 s; starts munged,
#      slurmctld and slurmd in the foreground as children of this shell);
#   2. makes the tiny synthetic data set and a small config (8 epochs);
#   3. job A: `sbatch --ntasks=2 launch/slurm_recvae.sbatch`, uninterrupted: must end COMPLETED,
#      its srun line must carry --mpi=pmix; its final.json gives the reference test ndcg@100;
#   4. job B: the same; once its metrics.jsonl has an epoch line, `scancel --signal=USR1 --batch`
#      signals the batch shell; the template forwards SIGUSR1, the trainer checkpoints and exits
#      3, the template runs `scontrol requeue`, the requeued job resumes (auto_resume) and
#      completes. Checked: the requeue (Restarts >= 1 and the template's lines in the job's output
#      file, which --open-mode=append keeps across attempts), "resumed from" in the output, and
#      test ndcg@100 equal to job A's (same rank count: deterministic; tolerance 1e-6).
#
# Never hangs: every wait polls against a deadline (and the whole test against TEST_BUDGET_S,
# 330 s by default); the EXIT trap cancels the jobs, stops the daemons, ends any process left
# from this run (found by a marker variable only this run's daemons and jobs carry, by pid) and
# removes the temporary directory (KEEP_TMP=1 keeps it for debugging).
set -uo pipefail

# shellcheck source=tests/common/slurm_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/slurm_cluster.sh"
say() { echo "slurm_test: $*"; }
slurm_test_args "usage: bash tests/slurm/run_slurm_test.sh RECVAE_DIST_BIN RECVAE_SYNTH_BIN [SOURCE_DIR]" "$@"
TEMPLATE=$SRC_DIR/launch/slurm_recvae.sbatch
EPOCHS=8
BUDGET_S=${TEST_BUDGET_S:-330}
T0=$SECONDS
if [[ ! -f "$TEMPLATE" ]]; then
  say "FAIL: template '$TEMPLATE' not found (SOURCE_DIR=$SRC_DIR)"
  exit 1
fi

# 1. Packages, temporary directory (cleanup on every exit path), the cluster
slurm_test_start recvae-slurm

# -------------------------------------------------------------------------------------------
# 2. Data and config
# -------------------------------------------------------------------------------------------
timeout "$(slurm_limit 60)" "$SYNTH_BIN" --preset tiny --seed 1 --output "$TMP/tiny.h5" --quiet ||
  fail "recvae_synth --preset tiny failed"
cat >"$TMP/recvae.yaml" <<EOF
# configs/quickstart.yaml with the data made above; epochs etc. come from RECVAE_SET
data:
  path: $TMP/tiny.h5
train:
  epochs: 15
eval:
  batch_size: 1000
output:
  dir: $TMP/work/unused
  progress_seconds: 0
EOF

# Submits the template with 2 ranks; prints the job id.
submit() {
  local name=$1
  (
    cd "$TMP/work" || exit 1
    timeout 30 env SLURM_CONF="$SLURM_TEST_CONF" RECVAE_SLURM_TEST_TAG="$SLURM_TEST_TAG" \
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
      RECVAE_BIN="$DIST_BIN" CONFIG="$TMP/recvae.yaml" OUTPUT_DIR="$TMP/work/run-$name" \
      RECVAE_SET="train.epochs=$EPOCHS" \
      sbatch --parsable --job-name="recvae-$name" --nodes=1 --ntasks=2 --ntasks-per-node=2 \
      --cpus-per-task=1 --time=00:10:00 --output="$TMP/work/$name.out" "$TEMPLATE"
  )
}

# Test ndcg@100 of a final.json (top-level key).
final_ndcg() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; print(repr(float(json.load(open(sys.argv[1]))["ndcg@100"])))' "$1"
  else  # the top-level key comes before the nested validation/popularity ones
    grep -o '"ndcg@100": *[-0-9.eE+]*' "$1" | head -n 1 | sed 's/.*: *//'
  fi
}

# -------------------------------------------------------------------------------------------
# 3. Job A: uninterrupted
# -------------------------------------------------------------------------------------------
jobA=$(submit A) || fail "sbatch of job A failed: $jobA"
say "job A = $jobA (2 ranks, $EPOCHS epochs, uninterrupted)"
slurm_wait_job "$jobA" 150
[[ "$job_state" == COMPLETED ]] || fail "job A ended in state '$job_state', expected COMPLETED"
[[ "$(slurm_job_field "$jobA" ExitCode)" == "0:0" ]] || fail "job A exit code $(slurm_job_field "$jobA" ExitCode), expected 0:0"
outA=$TMP/work/A.out
grep -q -- "srun .*--mpi=pmix" "$outA" ||
  fail "job A: the template did not start srun with --mpi=pmix although MpiDefault=none"
grep -q "trainer exited with status 0" "$outA" || fail "job A: no 'trainer exited with status 0' in its output"
[[ -f "$TMP/work/run-A/final.json" ]] || fail "job A: no final.json in its output.dir"
ndcgA=$(final_ndcg "$TMP/work/run-A/final.json")
[[ -n "$ndcgA" ]] || fail "job A: no ndcg@100 in final.json"
say "job A: COMPLETED at $((SECONDS - T0)) s, test ndcg@100 $ndcgA"

# -------------------------------------------------------------------------------------------
# 4. Job B: SIGUSR1 mid-run -> checkpoint, exit 3, requeue, resume
# -------------------------------------------------------------------------------------------
jobB=$(submit B) || fail "sbatch of job B failed: $jobB"
say "job B = $jobB (same, SIGUSR1 after its first epoch)"
metricsB=$TMP/work/run-B/metrics.jsonl
deadline=$((SECONDS + $(slurm_limit 120)))
while ((SECONDS < deadline)); do
  [[ -s "$metricsB" ]] && grep -q . "$metricsB" && break
  slurm_is_final_state "$(slurm_job_field "$jobB" JobState)" && break
  sleep 0.2
done
[[ -s "$metricsB" ]] || fail "job B: no epoch in $metricsB within the deadline"
slurm_cmd 10 scancel --signal=USR1 --batch "$jobB" ||
  fail "scancel --signal=USR1 --batch $jobB failed"
say "job B: SIGUSR1 sent to the batch shell at $((SECONDS - T0)) s ($(wc -l <"$metricsB") epoch(s) done)"
slurm_wait_job "$jobB" 200
[[ "$job_state" == COMPLETED ]] || fail "job B ended in state '$job_state', expected COMPLETED"
outB=$TMP/work/B.out
restarts=$(slurm_job_field "$jobB" Restarts)
((${restarts:-0} >= 1)) || fail "job B was not requeued (Restarts=${restarts:-?})"
grep -q "got SIGUSR1, forwarding it" "$outB" || fail "job B: the template did not forward SIGUSR1"
grep -q "trainer exited with status 3" "$outB" || fail "job B: the trainer did not exit with status 3 after SIGUSR1"
grep -q "checkpointed; requeueing job $jobB" "$outB" || fail "job B: the template did not requeue the job"
grep -q "job $jobB (restart 1)" "$outB" || fail "job B: no second attempt (restart 1) in its output file"
grep -q "resumed from" "$outB" || fail "job B: the requeued run did not resume from a checkpoint"
grep -q "trainer exited with status 0" "$outB" || fail "job B: the resumed trainer did not exit with status 0"
[[ -f "$TMP/work/run-B/final.json" ]] || fail "job B: no final.json in its output.dir"
ndcgB=$(final_ndcg "$TMP/work/run-B/final.json")
[[ -n "$ndcgB" ]] || fail "job B: no ndcg@100 in final.json"
awk -v a="$ndcgA" -v b="$ndcgB" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6) }' ||
  fail "job B's test ndcg@100 $ndcgB differs from job A's $ndcgA (uninterrupted)"
say "job B: requeued $restarts time(s), resumed, COMPLETED at $((SECONDS - T0)) s, test ndcg@100 $ndcgB = job A's"

say "PASS (template: srun --mpi=pmix chosen, SIGUSR1 -> checkpoint -> exit 3 -> requeue -> resume)"
exit 0
