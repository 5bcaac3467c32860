# shellcheck shell=bash
# tests/common/slurm_cluster.sh: a real, private, single-node Slurm for the tests that submit jobs
# (tests/slurm/run_slurm_test.sh, tests/slurm/run_sweep_slurm_test.sh). Sourced, not run.
#
#   set -uo pipefail
#   # shellcheck source=tests/common/slurm_cluster.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/../common/slurm_cluster.sh"
#   say() { echo "my_test: $*"; }
#   slurm_test_args "usage: ..." "$@"   # RECVAE_DIST_BIN RECVAE_SYNTH_BIN [SOURCE_DIR]
#   BUDGET_S=330; T0=$SECONDS           # the test's time budget and start
#   slurm_test_start recvae-mytest      # packages (or skip), TMP, cleanup on exit, the cluster
#   env SLURM_CONF="$SLURM_TEST_CONF" RECVAE_SLURM_TEST_TAG="$SLURM_TEST_TAG" sbatch ...
#
# slurm_test_args sets DIST_BIN, SYNTH_BIN and SRC_DIR (checked; SOURCE_DIR defaults to this
# repository) and sources tests/common/script_test.sh; `skip` (exit 77) and `fail` (exit 1, after
# the last lines of the test's logs, $TMP/work/*.out, *.log and */logs/slurm-*.out, the daemons'
# logs and the queue) are defined here. slurm_test_start skips when the test cannot run (not root,
# fewer than 2 CPUs, Slurm missing and not installable, no pmix plugin), makes $TMP, sets the EXIT
# trap (slurm_cluster_stop, then script_test_finish) and starts the cluster.
#
# Everything lives under $TMP: the munge key and socket, slurm.conf ($SLURM_TEST_CONF), state and
# spool directories, daemon logs ($TMP/log), and $TMP/work for the test's jobs. The daemons run in
# the foreground as children of the test's shell. Every daemon and job of this cluster carries
# RECVAE_SLURM_TEST_TAG=$SLURM_TEST_TAG in its environment (give it to sbatch as above), so that
# slurm_cluster_stop finds whatever is left (by pid; nothing else is touched).
#
# The slurm.conf: one node (this host, CPUs = nproc, NodeAddr 127.0.0.1, a free pair of ports),
# proctrack/linuxproc and task/none (no cgroup control in a container), JobRequeue=1,
# MpiDefault=none (Debian's default, so launch/slurm_recvae.sbatch has to choose --mpi=pmix
# itself), the scheduler every 2 s, and AuthInfo cred_expire=10: slurmctld gives a requeued batch
# job a begin time of now + cred_expire + 1 s (120 s by default; Reason=BeginTime) because slurmd
# keeps the job's credentials revoked that long, and forcing an earlier start (`scontrol update
# StartTime=now`) starts the batch script but fails its srun step ("task launch failed", 22.05).
# So a requeued job here waits ~11 s; one left held (Reason=JobHeld*) is released by
# slurm_wait_job.

_slurm_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SLURM_TEST_CONF=""
SLURM_TEST_TAG=""
_slurm_munged_pid=""
_slurm_ctld_pid=""
_slurm_slurmd_pid=""

# Seconds left of the test's budget; min(own limit, what is left), at least 1.
slurm_left() { echo $((BUDGET_S - (SECONDS - T0))); }
slurm_limit() {
  local l
  l=$(slurm_left)
  ((l > $1)) && l=$1
  ((l < 1)) && l=1
  echo "$l"
}

_slurm_have() {
  local c
  for c in slurmctld slurmd sbatch srun scontrol scancel squeue sinfo munged; do
    command -v "$c" >/dev/null 2>&1 || return 1
  done
}

# Root, 2 CPUs and Debian's slurmctld, slurmd, slurm-client and munge (installed with apt-get,
# bounded, when missing); skips the test otherwise.
slurm_install_or_skip() {
  local cores log pkgs apt_opts
  # nproc honours OMP_NUM_THREADS (coreutils): a caller with OMP_NUM_THREADS=1 must not make this one core.
  cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  [[ $(id -u) -eq 0 ]] || skip "needs root (starts slurmctld/slurmd/munged as root)"
  ((cores >= 2)) || skip "needs at least 2 CPUs (nproc=$cores)"
  _slurm_have && return 0
  command -v apt-get >/dev/null 2>&1 || skip "Slurm is not installed and there is no apt-get"
  say "installing slurmctld slurmd slurm-client munge (apt-get)"
  log=/tmp/recvae-slurm-apt.$$.log
  pkgs=(slurmctld slurmd slurm-client munge)
  apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=60)
  if ! DEBIAN_FRONTEND=noninteractive timeout "$(slurm_limit 150)" apt-get install "${apt_opts[@]}" \
      "${pkgs[@]}" >"$log" 2>&1; then
    timeout "$(slurm_limit 90)" apt-get update -q >>"$log" 2>&1
    DEBIAN_FRONTEND=noninteractive timeout "$(slurm_limit 150)" apt-get install "${apt_opts[@]}" \
      "${pkgs[@]}" >>"$log" 2>&1
  fi
  if ! _slurm_have; then
    tail -n 20 "$log"
    rm -f "$log"
    skip "could not install Debian's slurmctld, slurmd, slurm-client and munge"
  fi
  rm -f "$log"
}

# Makes the temporary directory TMP (mktemp -d /tmp/PREFIX.XXXXXX) and the cluster's folders in it.
slurm_make_tmp() {
  TMP=$(mktemp -d "/tmp/$1.XXXXXX") || fail "mktemp"
  chmod 755 "$TMP"
  SLURM_TEST_CONF=$TMP/etc/slurm.conf
  SLURM_TEST_TAG=$TMP
  mkdir -p "$TMP/etc" "$TMP/munge" "$TMP/state" "$TMP/spool" "$TMP/log" "$TMP/work" "$TMP/tmpfs"
  chmod 700 "$TMP/munge"
}

# slurm-client commands against this cluster, bounded: slurm_cmd SECONDS COMMAND ARGS...
slurm_cmd() {
  local t=$1
  shift
  timeout "$t" env SLURM_CONF="$SLURM_TEST_CONF" "$@"
}

# shellcheck disable=SC2317  # the stop functions run from the test's EXIT trap
# Stops a child daemon: TERM, up to $2 s, then KILL; reaps it.
_slurm_stop_child() {
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
# Pids of processes (other than this shell) whose environment carries this cluster's marker.
_slurm_tagged_pids() {
  local e pid
  [[ -n "$SLURM_TEST_TAG" ]] || return 0
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}
    pid=${pid%/environ}
    [[ "$pid" == "$$" ]] && continue
    if grep -qzxF "RECVAE_SLURM_TEST_TAG=$SLURM_TEST_TAG" "$e" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

# shellcheck disable=SC2317
# Cancels every job of this (private) cluster, stops the daemons and ends anything left from it.
slurm_cluster_stop() {
  local i jobs pids
  if [[ -n "$_slurm_ctld_pid" ]] && kill -0 "$_slurm_ctld_pid" 2>/dev/null; then
    jobs=$(slurm_cmd 10 squeue -h -o %F 2>/dev/null | sort -u)
    if [[ -n "$jobs" ]]; then
      # shellcheck disable=SC2086  # one job id per word
      slurm_cmd 10 scancel $jobs >/dev/null 2>&1
      for ((i = 0; i < 50; i++)); do
        [[ -z "$(slurm_cmd 5 squeue -h -o %i 2>/dev/null)" ]] && break
        sleep 0.2
      done
    fi
  fi
  _slurm_stop_child "$_slurm_slurmd_pid" 10
  _slurm_stop_child "$_slurm_ctld_pid" 10
  # Anything left from this run (slurmstepd, a batch shell, trainer ranks), by pid.
  pids=$(_slurm_tagged_pids)
  if [[ -n "$pids" ]]; then
    # shellcheck disable=SC2086  # one pid per word
    kill -TERM $pids 2>/dev/null
    sleep 1
    pids=$(_slurm_tagged_pids)
    # shellcheck disable=SC2086
    [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null
  fi
  _slurm_stop_child "$_slurm_munged_pid" 5
  _slurm_munged_pid=""
  _slurm_ctld_pid=""
  _slurm_slurmd_pid=""
}

# The last lines of the given files, the daemons' logs, squeue and every job (for a failure).
slurm_dump() {
  local f j
  for f in "$@" "$TMP"/log/*.log "$TMP"/munge/munged.log; do
    [[ -f "$f" ]] || continue
    echo "----- $f (last 80 lines) -----"
    tail -n 80 "$f"
  done
  echo "----- squeue -----"
  slurm_cmd 10 squeue 2>&1
  for j in $(slurm_cmd 10 scontrol show job -o 2>/dev/null | grep -o '^JobId=[0-9]*' | cut -d= -f2); do
    echo "----- scontrol show job $j -----"
    slurm_cmd 10 scontrol show job "$j" 2>&1
  done
}

_slurm_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts munged, writes slurm.conf, starts slurmctld and slurmd and waits for the node to be idle;
# skips when this Slurm has no mpi/pmix plugin. Sets SLURM_TEST_NODE.
slurm_cluster_start() {
  local p i ctld_port="" slurmd_port cores deadline state mpi_list
  cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  for ((p = 20000 + ($$ % 20000), i = 0; i < 200; i++, p += 2)); do
    if _slurm_port_free "$p" && _slurm_port_free $((p + 1)); then
      ctld_port=$p
      break
    fi
  done
  [[ -n "$ctld_port" ]] || fail "no free pair of TCP ports for slurmctld/slurmd"
  slurmd_port=$((ctld_port + 1))

  head -c 1024 /dev/urandom >"$TMP/munge/munge.key"
  chmod 400 "$TMP/munge/munge.key"
  env RECVAE_SLURM_TEST_TAG="$SLURM_TEST_TAG" munged --foreground --force \
    --socket="$TMP/munge/munge.socket" --key-file="$TMP/munge/munge.key" \
    --pid-file="$TMP/munge/munged.pid" --log-file="$TMP/munge/munged.log" \
    --seed-file="$TMP/munge/munged.seed" >>"$TMP/munge/munged.out" 2>&1 &
  _slurm_munged_pid=$!
  for ((i = 0; i < 50; i++)); do
    [[ -S "$TMP/munge/munge.socket" ]] && break
    kill -0 "$_slurm_munged_pid" 2>/dev/null || break
    sleep 0.2
  done
  [[ -S "$TMP/munge/munge.socket" ]] || fail "munged did not start (no socket after 10 s)"

  SLURM_TEST_NODE=$(hostname -s)
  cat >"$SLURM_TEST_CONF" <<EOF
# slurm.conf written by tests/common/slurm_cluster.sh: one node, everything under $TMP
ClusterName=recvaetest
SlurmctldHost=$SLURM_TEST_NODE(127.0.0.1)
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
NodeName=$SLURM_TEST_NODE NodeAddr=127.0.0.1 CPUs=$cores State=UNKNOWN
PartitionName=test Nodes=$SLURM_TEST_NODE Default=YES MaxTime=INFINITE State=UP
EOF

  env SLURM_CONF="$SLURM_TEST_CONF" RECVAE_SLURM_TEST_TAG="$SLURM_TEST_TAG" slurmctld -D -c -i \
    >>"$TMP/log/slurmctld.out" 2>&1 &
  _slurm_ctld_pid=$!
  env SLURM_CONF="$SLURM_TEST_CONF" RECVAE_SLURM_TEST_TAG="$SLURM_TEST_TAG" slurmd -D -N "$SLURM_TEST_NODE" \
    >>"$TMP/log/slurmd.out" 2>&1 &
  _slurm_slurmd_pid=$!
  deadline=$((SECONDS + $(slurm_limit 40)))
  state=""
  while ((SECONDS < deadline)); do
    kill -0 "$_slurm_ctld_pid" 2>/dev/null || fail "slurmctld exited at start-up"
    kill -0 "$_slurm_slurmd_pid" 2>/dev/null || fail "slurmd exited at start-up"
    state=$(slurm_cmd 5 sinfo -h -n "$SLURM_TEST_NODE" -o %T 2>/dev/null)
    [[ "$state" == "idle" ]] && break
    sleep 0.5
  done
  [[ "$state" == "idle" ]] || fail "node $SLURM_TEST_NODE not idle within 40 s (state '${state:-?}')"
  say "$(slurm_cmd 10 sbatch --version) up in $((SECONDS - T0)) s: node $SLURM_TEST_NODE," \
    "$cores CPUs, ports $ctld_port/$slurmd_port; $(munged --version 2>&1 | head -n 1)"

  mpi_list=$(slurm_cmd 20 srun --mpi=list 2>&1)
  if ! grep -qw pmix <<<"$mpi_list"; then
    echo "$mpi_list"
    skip "this Slurm has no mpi/pmix plugin (Debian: slurm-wlm-basic-plugins), which Open MPI needs under srun"
  fi
}

# Field KEY of `scontrol show job -o JOB` ("" when the job is unknown).
slurm_job_field() {
  slurm_cmd 10 scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

slurm_is_final_state() {
  case "$1" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) return 0 ;;
  esac
  return 1
}

# Waits (up to $2 s) until job $1 reaches a final state; releases a held requeued job. Sets
# job_state (not a command substitution: a signal to the test's shell must not wait for a subshell).
# shellcheck disable=SC2034  # job_state is read by the test
job_state=""
slurm_wait_job() {
  local job=$1 deadline st reason last=""
  deadline=$((SECONDS + $(slurm_limit "$2")))
  while ((SECONDS < deadline)); do
    st=$(slurm_job_field "$job" JobState)
    reason=$(slurm_job_field "$job" Reason)
    if [[ "$st $reason" != "$last" ]]; then
      say "  job $job: ${st:-?} ($reason) at $((SECONDS - T0)) s"
      last="$st $reason"
    fi
    if slurm_is_final_state "$st"; then
      job_state=$st
      return 0
    fi
    # (requeued: PENDING with Reason=BeginTime for cred_expire + 1 s; see the header)
    if [[ "$st" == PENDING && "$reason" == *Held* ]]; then
      slurm_cmd 10 scontrol release "$job"
    fi
    sleep 1
  done
  # shellcheck disable=SC2034
  job_state="${st:-unknown}(timeout after ${2} s)"
}

# ------------------------------------------------------------------------------------------------
# The frame of a Slurm test (see the header)
# ------------------------------------------------------------------------------------------------
skip() {
  say "SKIP: $*"
  exit 77
}
fail() {
  say "FAIL: $*"
  if [[ -n "${TMP:-}" ]]; then
    slurm_dump "$TMP"/work/*.out "$TMP"/work/*.log "$TMP"/work/*/logs/slurm-*.out
  fi
  say "FAIL: $*"
  exit 1
}

slurm_test_args() {
  local usage=$1 f
  shift
  if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "$usage" >&2
    exit 1
  fi
  DIST_BIN=$(readlink -f "$1")
  SYNTH_BIN=$(readlink -f "$2")
  SRC_DIR=$(readlink -f "${3:-$_slurm_lib_dir/../..}")
  # shellcheck source=tests/common/script_test.sh
  source "$SRC_DIR/tests/common/script_test.sh"
  for f in "$DIST_BIN" "$SYNTH_BIN"; do
    if [[ ! -x "$f" ]]; then
      say "FAIL: binary '$f' not found or not executable"
      exit 1
    fi
  done
}

# shellcheck disable=SC2317  # run from the EXIT trap
_slurm_test_cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  slurm_cluster_stop
  script_test_finish "$rc"
}

slurm_test_start() {
  slurm_install_or_skip
  slurm_make_tmp "$1"
  trap _slurm_test_cleanup EXIT
  script_test_trap_interrupts
  slurm_cluster_start
}
