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
#   1. installs the Debian packages when missing (apt-get, bounded), writes a munge key and a
#      slurm.conf for one node (this host, CPUs=$(nproc), NodeAddr=127.0.0.1, free ports),
#      proctrack/linuxproc and task/none (no cgroup control in a container), JobRequeue=1 and
#      MpiDefault=none (Debian's default, so the template has to choose --mpi=pmix itself), and
#      starts munged, slurmctld and slurmd in the foreground as children of this shell;
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
# Requeue delay: slurmctld gives a requeued batch job a begin time of now + the credential
# lifetime + 1 s (AuthInfo cred_expire, 120 s by default; the job pends with Reason=BeginTime),
# because slurmd keeps the job's credentials revoked that long. Forcing an earlier start
# (`scontrol update JobId=.. StartTime=now`) does not work: the batch script starts, but its
# srun step fails with "task launch failed" (seen with 22.05). So this slurm.conf sets
# AuthInfo=...,cred_expire=10 (a requeued job waits ~11 s) and the test just waits; a requeued
# job left held (Reason=JobHeld*) is released with `scontrol release`.
#
# Never hangs: every wait polls against a deadline (and the whole test against TEST_BUDGET_S,
# 330 s by default); the EXIT trap cancels the jobs, stops the daemons, ends any process left
# from this run (found by a marker variable only this run's daemons and jobs carry, by pid) and
# removes the temporary directory (KEEP_TMP=1 keeps it for debugging).
set -uo pipefail

usage="usage: bash tests/slurm/run_slurm_test.sh RECVAE_DIST_BIN RECVAE_SYNTH_BIN [SOURCE_DIR]"
if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "$usage" >&2
  exit 1
fi
DIST_BIN=$(readlink -f "$1")
SYNTH_BIN=$(readlink -f "$2")
SRC_DIR=$(readlink -f "${3:-$(dirname "$0")/../..}")
# shellcheck source=tests/common/script_test.sh
source "$SRC_DIR/tests/common/script_test.sh"
TEMPLATE=$SRC_DIR/launch/slurm_recvae.sbatch
EPOCHS=8
BUDGET_S=${TEST_BUDGET_S:-330}
T0=$SECONDS

say() { echo "slurm_test: $*"; }
skip() {
  say "SKIP: $*"
  exit 77
}

for f in "$DIST_BIN" "$SYNTH_BIN"; do
  if [[ ! -x "$f" ]]; then
    say "FAIL: binary '$f' not found or not executable"
    exit 1
  fi
done
if [[ ! -f "$TEMPLATE" ]]; then
  say "FAIL: template '$TEMPLATE' not found (SOURCE_DIR=$SRC_DIR)"
  exit 1
fi
# nproc honours OMP_NUM_THREADS (coreutils): a caller with OMP_NUM_THREADS=1 must not make this one core.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
[[ $(id -u) -eq 0 ]] || skip "needs root (starts slurmctld/slurmd/munged as root)"
((cores >= 2)) || skip "needs at least 2 CPUs for a 2-rank job (nproc=$cores)"

# Seconds left of the whole test's budget; min(own limit, what is left).
left() { echo $((BUDGET_S - (SECONDS - T0))); }
limit() {
  local l
  l=$(left)
  ((l > $1)) && l=$1
  ((l < 1)) && l=1
  echo "$l"
}

# -------------------------------------------------------------------------------------------
# 1. Packages
# -------------------------------------------------------------------------------------------
have_slurm() {
  local c
  for c in slurmctld slurmd sbatch srun scontrol scancel sinfo munged; do
    command -v "$c" >/dev/null 2>&1 || return 1
  done
}
if ! have_slurm; then
  command -v apt-get >/dev/null 2>&1 || skip "Slurm is not installed and there is no apt-get"
  say "installing slurmctld slurmd slurm-client munge (apt-get)"
  pkgs=(slurmctld slurmd slurm-client munge)
  apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=60)
  if ! DEBIAN_FRONTEND=noninteractive timeout "$(limit 150)" apt-get install "${apt_opts[@]}" \
      "${pkgs[@]}" >/tmp/recvae-slurm-apt.$$.log 2>&1; then
    timeout "$(limit 90)" apt-get update -q >>/tmp/recvae-slurm-apt.$$.log 2>&1
    DEBIAN_FRONTEND=noninteractive timeout "$(limit 150)" apt-get install "${apt_opts[@]}" \
      "${pkgs[@]}" >>/tmp/recvae-slurm-apt.$$.log 2>&1
  fi
  if ! have_slurm; then
    tail -n 20 /tmp/recvae-slurm-apt.$$.log
    rm -f /tmp/recvae-slurm-apt.$$.log
    skip "could not install Debian's slurmctld, slurmd, slurm-client and munge"
  fi
  rm -f /tmp/recvae-slurm-apt.$$.log
fi

# -------------------------------------------------------------------------------------------
# Temporary directory, cleanup on every exit path
# -------------------------------------------------------------------------------------------
TMP=$(mktemp -d /tmp/recvae-slurm.XXXXXX) || {
  say "FAIL: mktemp"
  exit 1
}
chmod 755 "$TMP"
CONF=$TMP/etc/slurm.conf
TAG=$TMP  # marker: RECVAE_SLURM_TEST_TAG=$TAG is in the environment of this run's daemons and jobs
mkdir -p "$TMP/etc" "$TMP/munge" "$TMP/state" "$TMP/spool" "$TMP/log" "$TMP/work" "$TMP/tmpfs"
chmod 700 "$TMP/munge"

munged_pid=""
ctld_pid=""
slurmd_pid=""
jobs_submitted=()
# shellcheck disable=SC2317  # stop_child, tagged_pids and cleanup run from the EXIT trap
# Stops a child daemon: TERM, up to $2 s, then KILL; reaps it.
stop_child() {
  local pid=$1 wait_s=$2 i
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || {
    wait "$pid" 2>/dev/null
    return 0
  }
  for ((i = 0; i < wait_s * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

# shellcheck disable=SC2317
# Pids of processes (other than this shell) whose environment carries this run's marker.
tagged_pids() {
  local e pid
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}
    pid=${pid%/environ}
    [[ "$pid" == "$$" ]] && continue
    if grep -qzxF "RECVAE_SLURM_TEST_TAG=$TAG" "$e" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

# shellcheck disable=SC2317
cleanup() {
  local rc=$? i pids
  trap - EXIT INT TERM HUP
  if [[ -n "$ctld_pid" ]] && kill -0 "$ctld_pid" 2>/dev/null && ((${#jobs_submitted[@]} > 0)); then
    timeout 10 env SLURM_CONF="$CONF" scancel "${jobs_submitted[@]}" >/dev/null 2>&1
    for ((i = 0; i < 50; i++)); do
      [[ -z "$(timeout 5 env SLURM_CONF="$CONF" squeue -h -o %i 2>/dev/null)" ]] && break
      sleep 0.2
    done
  fi
  stop_child "$slurmd_pid" 10
  stop_child "$ctld_pid" 10
  # Anything left from this run (slurmstepd, a batch shell, trainer ranks), by pid.
  pids=$(tagged_pids)
  if [[ -n "$pids" ]]; then
    # shellcheck disable=SC2086  # one pid per word
    kill -TERM $pids 2>/dev/null
    sleep 1
    pids=$(tagged_pids)
    # shellcheck disable=SC2086
    [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null
  fi
  stop_child "$munged_pid" 5
  script_test_finish "$rc"
}
trap cleanup EXIT
script_test_trap_interrupts

dump() {
  local f
  for f in "$TMP"/work/*.out "$TMP"/log/*.log "$TMP"/munge/munged.log; do
    [[ -f "$f" ]] || continue
    echo "----- $f (last 80 lines) -----"
    tail -n 80 "$f"
  done
  echo "----- squeue -----"
  timeout 10 env SLURM_CONF="$CONF" squeue 2>&1
  local j
  for j in "${jobs_submitted[@]}"; do
    echo "----- scontrol show job $j -----"
    timeout 10 env SLURM_CONF="$CONF" scontrol show job "$j" 2>&1
  done
}
fail() {
  say "FAIL: $*"
  dump
  say "FAIL: $*"
  exit 1
}

# -------------------------------------------------------------------------------------------
# 1b. munged, slurm.conf, slurmctld, slurmd
# -------------------------------------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ctld_port=""
for ((p = 20000 + ($$ % 20000), i = 0; i < 200; i++, p += 2)); do
  if port_free "$p" && port_free $((p + 1)); then
    ctld_port=$p
    break
  fi
done
[[ -n "$ctld_port" ]] || fail "no free pair of TCP ports for slurmctld/slurmd"
slurmd_port=$((ctld_port + 1))

head -c 1024 /dev/urandom >"$TMP/munge/munge.key"
chmod 400 "$TMP/munge/munge.key"
env RECVAE_SLURM_TEST_TAG="$TAG" munged --foreground --force \
  --socket="$TMP/munge/munge.socket" --key-file="$TMP/munge/munge.key" \
  --pid-file="$TMP/munge/munged.pid" --log-file="$TMP/munge/munged.log" \
  --seed-file="$TMP/munge/munged.seed" >>"$TMP/munge/munged.out" 2>&1 &
munged_pid=$!
for ((i = 0; i < 50; i++)); do
  [[ -S "$TMP/munge/munge.socket" ]] && break
  kill -0 "$munged_pid" 2>/dev/null || break
  sleep 0.2
done
[[ -S "$TMP/munge/munge.socket" ]] || fail "munged did not start (no socket after 10 s)"

node=$(hostname -s)
cat >"$CONF" <<EOF
# slurm.conf written by tests/slurm/run_slurm_test.sh: one node, everything under $TMP
ClusterName=recvaetest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job starts again after cred_expire + 1 s (default 120)
AuthInfo=socket=$TMP/munge/munge.socket,cred_expire=10
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
# the PMIx plugin's per-step directories (spmix_appdir_*) go here, not into /tmp
TmpFS=$TMP/tmpfs
SlurmctldPidFile=$TMP/slurmctld.pid
SlurmdPidFile=$TMP/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroup control in a container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
# the main scheduling loop every 2 s (default 60): a requeued job starts soon after its begin time
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Debian's default: the template must pick --mpi=pmix by itself
MpiDefault=none
JobRequeue=1
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=5
MinJobAge=3600
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cores State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

env SLURM_CONF="$CONF" RECVAE_SLURM_TEST_TAG="$TAG" slurmctld -D -c -i >>"$TMP/log/slurmctld.out" 2>&1 &
ctld_pid=$!
env SLURM_CONF="$CONF" RECVAE_SLURM_TEST_TAG="$TAG" slurmd -D -N "$node" >>"$TMP/log/slurmd.out" 2>&1 &
slurmd_pid=$!
deadline=$((SECONDS + $(limit 40)))
state=""
while ((SECONDS < deadline)); do
  kill -0 "$ctld_pid" 2>/dev/null || fail "slurmctld exited at start-up"
  kill -0 "$slurmd_pid" 2>/dev/null || fail "slurmd exited at start-up"
  state=$(timeout 5 env SLURM_CONF="$CONF" sinfo -h -n "$node" -o %T 2>/dev/null)
  [[ "$state" == "idle" ]] && break
  sleep 0.5
done
[[ "$state" == "idle" ]] || fail "node $node not idle within 40 s (state '${state:-?}')"
say "$(env SLURM_CONF="$CONF" sbatch --version) up in $((SECONDS - T0)) s: node $node," \
  "$cores CPUs, ports $ctld_port/$slurmd_port; $(munged --version 2>&1 | head -n 1)"

mpi_list=$(timeout 20 env SLURM_CONF="$CONF" srun --mpi=list 2>&1)
if ! grep -qw pmix <<<"$mpi_list"; then
  echo "$mpi_list"
  skip "this Slurm has no mpi/pmix plugin (Debian: slurm-wlm-basic-plugins), which Open MPI needs under srun"
fi

# -------------------------------------------------------------------------------------------
# 2. Data and config
# -------------------------------------------------------------------------------------------
timeout "$(limit 60)" "$SYNTH_BIN" --preset tiny --seed 1 --output "$TMP/tiny.h5" --quiet ||
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
    timeout 30 env SLURM_CONF="$CONF" RECVAE_SLURM_TEST_TAG="$TAG" \
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
      RECVAE_BIN="$DIST_BIN" CONFIG="$TMP/recvae.yaml" OUTPUT_DIR="$TMP/work/run-$name" \
      RECVAE_SET="train.epochs=$EPOCHS" \
      sbatch --parsable --job-name="recvae-$name" --nodes=1 --ntasks=2 --ntasks-per-node=2 \
      --cpus-per-task=1 --time=00:10:00 --output="$TMP/work/$name.out" "$TEMPLATE"
  )
}

# Field KEY of `scontrol show job -o JOB` ("" when the job is unknown).
job_field() {
  timeout 10 env SLURM_CONF="$CONF" scontrol show job -o "$1" 2>/dev/null |
    tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
is_final_state() {
  case "$1" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) return 0 ;;
  esac
  return 1
}
# Waits (up to $2 s) until job $1 reaches a final state; releases a held requeued job. Sets
# job_state (not a command substitution: a signal to this shell must not wait for a subshell).
job_state=""
wait_job() {
  local job=$1 deadline=$((SECONDS + $(limit "$2"))) st reason last=""
  while ((SECONDS < deadline)); do
    st=$(job_field "$job" JobState)
    reason=$(job_field "$job" Reason)
    if [[ "$st $reason" != "$last" ]]; then
      say "  job $job: ${st:-?} ($reason) at $((SECONDS - T0)) s"
      last="$st $reason"
    fi
    if is_final_state "$st"; then
      job_state=$st
      return 0
    fi
    # (requeued: PENDING with Reason=BeginTime for cred_expire + 1 s; see the header)
    if [[ "$st" == PENDING && "$reason" == *Held* ]]; then
      timeout 10 env SLURM_CONF="$CONF" scontrol release "$job"
    fi
    sleep 1
  done
  job_state="${st:-unknown}(timeout after ${2} s)"
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
jobs_submitted+=("$jobA")
say "job A = $jobA (2 ranks, $EPOCHS epochs, uninterrupted)"
wait_job "$jobA" 150
[[ "$job_state" == COMPLETED ]] || fail "job A ended in state '$job_state', expected COMPLETED"
[[ "$(job_field "$jobA" ExitCode)" == "0:0" ]] || fail "job A exit code $(job_field "$jobA" ExitCode), expected 0:0"
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
jobs_submitted+=("$jobB")
say "job B = $jobB (same, SIGUSR1 after its first epoch)"
metricsB=$TMP/work/run-B/metrics.jsonl
deadline=$((SECONDS + $(limit 120)))
while ((SECONDS < deadline)); do
  [[ -s "$metricsB" ]] && grep -q . "$metricsB" && break
  is_final_state "$(job_field "$jobB" JobState)" && break
  sleep 0.2
done
[[ -s "$metricsB" ]] || fail "job B: no epoch in $metricsB within the deadline"
timeout 10 env SLURM_CONF="$CONF" scancel --signal=USR1 --batch "$jobB" ||
  fail "scancel --signal=USR1 --batch $jobB failed"
say "job B: SIGUSR1 sent to the batch shell at $((SECONDS - T0)) s ($(wc -l <"$metricsB") epoch(s) done)"
wait_job "$jobB" 200
[[ "$job_state" == COMPLETED ]] || fail "job B ended in state '$job_state', expected COMPLETED"
outB=$TMP/work/B.out
restarts=$(job_field "$jobB" Restarts)
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
