#!/usr/bin/env bash
# run_emulated_nodes_test.sh: tests launch/emulated_mpirun.sh (launch/lib/emulated_nodes.sh) and
# launch/run_local.sh --nodes: the trainer on emulated nodes (network namespaces on a bridge).
#
#   bash tests/launch/run_emulated_nodes_test.sh BIN_DIR SOURCE_DIR
#
# BIN_DIR holds recvae_dist and recvae_synth (ctest passes the build directory). Exit status:
# 0 pass, 1 fail (the failed check is named), 77 skip: only when network namespaces cannot be made
# here (not root, no `ip netns`, `ip netns add` fails); with CI set in the environment (CI=true)
# that is a failure instead, so that CI never skips it silently. About a minute on 2 cores.
#
# What it does, in a temporary directory (removed at the end; KEEP_TMP=1 keeps it):
#   1. the plan: --dry-run prints namespaces, addresses, tc and mpirun commands and creates nothing;
#      bad arguments exit 2; a non-root user is refused with exit 2 (when setpriv exists);
#   2. the tiny synthetic split and configs/quickstart.yaml for 2 epochs, 1 thread, as a single
#      process: the reference;
#   3. the same on 2 emulated nodes (launch/emulated_mpirun.sh, 2 ranks) and on 3 (run_local.sh
#      --nodes 3 -n 3): final.json's test ndcg@100, recall@20 and recall@50 within 1e-4 of the
#      reference, world_size 2 and 3, and every node's veth carried > 1 MB each way (the counters
#      written by EMULATED_NODES_STATS_FILE just before teardown);
#   4. a killed rank: 6 epochs, a checkpoint every epoch, 2 nodes; once the first checkpoint exists
#      the rank in node 1 (found with `ip netns pids`) gets SIGKILL: the job must end non-zero
#      within 90 s with Open MPI's message naming the killed rank, and every namespace of that
#      cluster must be gone. Then `--resume` on 2 nodes gets SIGTERM (the launcher's) after its
#      next checkpoint: exit 3 ("stop requested"), namespaces gone; a second `--resume` completes
#      and writes final.json. Last, SIGKILL of the launcher itself during a run: its reaper must
#      remove the cluster and end what ran in it within 30 s;
#   5. --link 100mbit with a small model: every end of every link has a tbf qdisc at 100Mbit that
#      sent bytes and throttled (overlimits > 0), and the collectives' throughput measured by the
#      trainer (comm_wire_bytes_per_rank / comm_seconds in metrics.jsonl) stays below 1.3 x the
#      link rate (unshaped it is tens of times higher);
#   6. --link 1gbit,2ms: without netem in the kernel exit 2 with the netem message and nothing left
#      behind; with netem, the run succeeds and the links carry a netem qdisc;
#   7. after every run: no namespace of that run left (checked by name), and at the end none new.
#
# Not `set -e`, like the other tests here: every check fails with its own message.
set -uo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
if [[ $# -ne 2 ]]; then
  echo "usage: bash tests/launch/run_emulated_nodes_test.sh BIN_DIR SOURCE_DIR" >&2
  exit 1
fi
BIN_DIR=$(readlink -f "$1")
SRC_DIR=$(readlink -f "$2")
# shellcheck source=tests/common/script_test.sh
source "$SRC_DIR/tests/common/script_test.sh"
LAUNCHER=$SRC_DIR/launch/emulated_mpirun.sh
RUN_LOCAL=$SRC_DIR/launch/run_local.sh
CONFIG=$SRC_DIR/configs/quickstart.yaml
T0=$SECONDS
TMP=""
launchers=()

say() { echo "emulated_nodes_test: $*"; }
fail() {
  say "FAIL: $*"
  exit 1
}
skip() {
  if [[ -n "${CI:-}" ]]; then
    say "FAIL (CI is set, so no skipping): $*"
    exit 1
  fi
  say "SKIP: $*"
  exit 77
}

for b in recvae_dist recvae_synth; do
  [[ -x "$BIN_DIR/$b" ]] || fail "$BIN_DIR/$b not found or not executable"
done
for f in "$LAUNCHER" "$RUN_LOCAL" "$CONFIG"; do
  [[ -f "$f" ]] || fail "$f not found (SOURCE_DIR=$SRC_DIR)"
done

# --- 1a. the plan needs nothing (no root, no namespaces) -------------------------------------------
plan=$(bash "$LAUNCHER" --nodes 3 -n 4 --link 500mbit --dry-run -- /bin/true 2>&1) ||
  fail "--dry-run exited non-zero: $plan"
for want in "namespace rvn[0-9]*n2" "address 10\.213\.[0-9]*\.3" "ranks 0,3" \
  "tc -n rvn[0-9]*sw qdisc add dev rvv[0-9]*s2 root handle 1: tbf rate 500mbit" \
  "mpirun --hostfile .* -np 4 --map-by node" "oob_tcp_if_include 10\.213\."; do
  grep -q -- "$want" <<<"$plan" || fail "--dry-run output lacks /$want/: $plan"
done
# Bad arguments (the last: no command) exit 2 before anything is checked or made.
for args in "--nodes 0 -- /bin/true" "--nodes 2 --link fast -- /bin/true" "--link 1gbit -- /bin/true" \
  "--nodes 2 --link 1gbit,soon -- /bin/true" "--nodes 2 -n x -- /bin/true" "--nodes 2"; do
  rc=0
  # shellcheck disable=SC2086  # the arguments are words
  bash "$LAUNCHER" $args >/dev/null 2>&1 || rc=$?
  [[ $rc -eq 2 ]] || fail "emulated_mpirun.sh $args: exit $rc, expected 2"
done
say "plan and argument checks passed"

# --- 1b. can this machine make namespaces? ---------------------------------------------------------
[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, veth pairs, a bridge)"
command -v ip >/dev/null 2>&1 || skip "no 'ip' (iproute2)"
ip netns list >/dev/null 2>&1 || skip "'ip netns' does not work here"
probe=rvt$$probe
if ! out=$(ip netns add "$probe" 2>&1); then
  skip "'ip netns add' fails here: $out"
fi
ip netns del "$probe" 2>/dev/null
for c in tc unshare hostname mpirun; do
  command -v "$c" >/dev/null 2>&1 || fail "'$c' not found (launch/setup/install_deps.sh installs it)"
done
if command -v setpriv >/dev/null 2>&1; then
  rc=0
  out=$(setpriv --reuid 65534 --regid 65534 --clear-groups bash "$LAUNCHER" --nodes 2 -- /bin/true 2>&1) || rc=$?
  [[ $rc -eq 2 ]] || fail "as a non-root user: exit $rc, expected 2 ($out)"
  grep -q "needs root" <<<"$out" || fail "as a non-root user: no 'needs root' message ($out)"
fi

# --- temporary directory, cleanup on every exit path ----------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/recvae-emulated-test.XXXXXX") || fail "mktemp"
chmod 755 "$TMP"
ns_before=$(ip netns list 2>/dev/null | awk '{print $1}' | sort)

# Namespaces made since the test started by an emulated cluster whose launcher is gone.
# shellcheck disable=SC2317  # invoked by cleanup
stale_namespaces() {
  local ns pid
  comm -13 <(echo "$ns_before") <(ip netns list 2>/dev/null | awk '{print $1}' | sort) |
    while read -r ns; do
      [[ "$ns" =~ ^rvn([0-9]+)(n[0-9]+|sw|probe)$ ]] || continue
      pid=${BASH_REMATCH[1]}
      kill -0 "$pid" 2>/dev/null && continue
      echo "$ns"
    done
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$? p i ns
  trap - EXIT INT TERM HUP
  for p in "${launchers[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null
      for ((i = 0; i < 100; i++)); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.2
      done
      kill -KILL "$p" 2>/dev/null
    fi
  done
  for ns in $(stale_namespaces); do
    say "removing namespace $ns left behind"
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  script_test_finish "$rc"
}
trap cleanup EXIT
script_test_trap_interrupts
export OMP_NUM_THREADS=1 RECVAE_PLOT=0
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$TMP" || fail "cd $TMP"

# Fails when a namespace of cluster $1 (the launcher's pid) still exists.
assert_gone() {
  local left
  left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^rvn$1(n[0-9]+|sw|probe)\$" || true)
  [[ -z "$left" ]] || fail "$2: namespaces left behind: $(echo "$left" | tr '\n' ' ')"
}
assert_no_new() {
  local new
  new=$(comm -13 <(echo "$ns_before") <(ip netns list 2>/dev/null | awk '{print $1}' | sort) |
    grep -E '^rvn[0-9]+(n[0-9]+|sw|probe)$' || true)
  [[ -z "$new" ]] || fail "$1: namespaces left behind: $(echo "$new" | tr '\n' ' ')"
}

# Top-level key $2 of final.json $1 (the top-level keys come before the nested ones).
final_value() {
  grep -o "\"$2\": *[-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: *//'
}
assert_same_metrics() {
  local file=$1 what=$2 ws=$3 key a b
  [[ -f "$file" ]] || fail "$what: no $file"
  for key in ndcg@100 recall@20 recall@50; do
    a=$(final_value "$REF" "$key")
    b=$(final_value "$file" "$key")
    [[ -n "$a" && -n "$b" ]] || fail "$what: $key missing in final.json"
    awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4) }' ||
      fail "$what: test $key $b differs from the single process's $a by more than 1e-4"
  done
  [[ "$(final_value "$file" world_size)" == "$ws" ]] ||
    fail "$what: world_size $(final_value "$file" world_size), expected $ws"
}

# Every node's veth in stats file $1 moved more than $2 bytes each way.
assert_traffic() {
  local file=$1 min=$2 what=$3 nodes
  [[ -s "$file" ]] || fail "$what: no link statistics in $file (EMULATED_NODES_STATS_FILE)"
  nodes=$(grep -c '^node ' "$file")
  [[ "$nodes" == "$4" ]] || fail "$what: $nodes node lines in $file, expected $4"
  awk -v min="$min" '$1 == "node" && !($8 > min && $10 > min) { bad = 1; print }
    END { exit bad }' "$file" || fail "$what: a node's veth carried <= $min bytes one way: $(cat "$file")"
}

# Waits up to $2 s for pid $1 to end; sets wait_rc (its status) or fails on a hang.
wait_rc=0
wait_for() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && fail "$3: still running after $2 s (hang)"
  wait_rc=0
  wait "$pid" 2>/dev/null || wait_rc=$?
}

# Starts the launcher in the background (pid in launcher_pid): start_launcher LOG ARGS...
start_launcher() {
  local log=$1
  shift
  bash "$LAUNCHER" "$@" >"$log" 2>&1 &
  launcher_pid=$!
  launchers+=("$launcher_pid")
}

train_args=(--set "data.path=$TMP/q.h5" --set train.threads=1)

# --- 2. data and the single-process reference ------------------------------------------------------
"$BIN_DIR/recvae_synth" --preset tiny --seed 1 --output "$TMP/q.h5" --quiet || fail "recvae_synth --preset tiny failed"
timeout 300 "$BIN_DIR/recvae_dist" "$CONFIG" "${train_args[@]}" --set "output.dir=$TMP/single" \
  --set train.epochs=2 >"$TMP/single.log" 2>&1 || fail "single-process run failed: $(tail -n 5 "$TMP/single.log")"
REF=$TMP/single/final.json
[[ -f "$REF" ]] || fail "single-process run wrote no final.json"
say "single process: test ndcg@100 $(final_value "$REF" ndcg@100) ($((SECONDS - T0)) s)"

# --- 3. 2 and 3 emulated nodes ---------------------------------------------------------------------
t=$SECONDS
EMULATED_NODES_STATS_FILE=$TMP/n2.stats start_launcher "$TMP/n2.log" --nodes 2 -- \
  "$BIN_DIR/recvae_dist" "$CONFIG" "${train_args[@]}" --set "output.dir=$TMP/n2" --set train.epochs=2
wait_for "$launcher_pid" 300 "2 nodes"
[[ $wait_rc -eq 0 ]] || fail "2 nodes: exit $wait_rc: $(tail -n 20 "$TMP/n2.log")"
assert_gone "$launcher_pid" "2 nodes"
grep -q "emulated_nodes: 2 node(s) .*, 2 rank(s): 1 per node" "$TMP/n2.log" ||
  fail "2 nodes: no description line on stderr: $(head -n 3 "$TMP/n2.log")"
assert_same_metrics "$TMP/n2/final.json" "2 nodes" 2
assert_traffic "$TMP/n2.stats" 1000000 "2 nodes" 2
say "2 nodes: same metrics, $(awk '$1 == "node" && $2 == 1 { print $10 }' "$TMP/n2.stats") bytes sent by node 1 ($((SECONDS - t)) s)"

t=$SECONDS
rc=0
EMULATED_NODES_STATS_FILE=$TMP/n3.stats timeout -k 30 300 bash "$RUN_LOCAL" -n 3 --nodes 3 "$CONFIG" \
  "${train_args[@]}" --set "output.dir=$TMP/n3" --set train.epochs=2 >"$TMP/n3.log" 2>&1 || rc=$?
[[ $rc -eq 0 ]] || fail "3 nodes (run_local.sh --nodes 3): exit $rc: $(tail -n 20 "$TMP/n3.log")"
assert_no_new "3 nodes"
assert_same_metrics "$TMP/n3/final.json" "3 nodes" 3
assert_traffic "$TMP/n3.stats" 1000000 "3 nodes" 3
say "3 nodes (run_local.sh --nodes 3): same metrics, traffic on every link ($((SECONDS - t)) s)"

# --- 4. a killed rank, then SIGTERM, then resume ---------------------------------------------------
t=$SECONDS
K=$TMP/killed
start_launcher "$TMP/kill.log" --nodes 2 -- "$BIN_DIR/recvae_dist" "$CONFIG" "${train_args[@]}" \
  --set "output.dir=$K" --set train.epochs=6 --set output.checkpoint_every=1
deadline=$((SECONDS + 120))
while [[ ! -s "$K/checkpoints/latest" ]] && kill -0 "$launcher_pid" 2>/dev/null && ((SECONDS < deadline)); do
  sleep 0.2
done
[[ -s "$K/checkpoints/latest" ]] || fail "killed rank: no checkpoint within 120 s: $(tail -n 20 "$TMP/kill.log")"
victim=""
for p in $(ip netns pids "rvn${launcher_pid}n1" 2>/dev/null); do
  [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == recvae_dist ]] && victim=$p
done
[[ -n "$victim" ]] || fail "killed rank: no recvae_dist process in namespace rvn${launcher_pid}n1"
kill -KILL "$victim"
wait_for "$launcher_pid" 90 "killed rank"
((wait_rc != 0)) || fail "killed rank: the job exited 0 although rank 1 was killed"
grep -q "process rank 1 with PID [0-9]* on node rvn${launcher_pid}n1 exited on signal 9" "$TMP/kill.log" ||
  fail "killed rank: no message naming the killed rank: $(tail -n 20 "$TMP/kill.log")"
assert_gone "$launcher_pid" "killed rank"
say "killed rank: job ended with exit $wait_rc in $((SECONDS - t)) s after $(cat "$K/checkpoints/latest"), namespaces removed"

t=$SECONDS
before=$(cat "$K/checkpoints/latest")
start_launcher "$TMP/term.log" --nodes 2 -- "$BIN_DIR/recvae_dist" "$CONFIG" "${train_args[@]}" \
  --set "output.dir=$K" --set train.epochs=6 --set output.checkpoint_every=1 --resume
deadline=$((SECONDS + 120))
while [[ "$(cat "$K/checkpoints/latest" 2>/dev/null)" == "$before" ]] && kill -0 "$launcher_pid" 2>/dev/null &&
  ((SECONDS < deadline)); do
  sleep 0.2
done
kill -0 "$launcher_pid" 2>/dev/null || fail "SIGTERM: the resumed run ended early: $(tail -n 20 "$TMP/term.log")"
kill -TERM "$launcher_pid"
wait_for "$launcher_pid" 90 "SIGTERM"
[[ $wait_rc -eq 3 ]] || fail "SIGTERM: exit $wait_rc, expected 3 (checkpointed): $(tail -n 20 "$TMP/term.log")"
grep -q "resumed from" "$TMP/term.log" || fail "SIGTERM: the run did not resume: $(head -n 20 "$TMP/term.log")"
grep -q "stop requested: checkpoint written" "$TMP/term.log" ||
  fail "SIGTERM: no 'stop requested: checkpoint written': $(tail -n 20 "$TMP/term.log")"
assert_gone "$launcher_pid" "SIGTERM"
say "SIGTERM: checkpointed at $(cat "$K/checkpoints/latest"), exit 3, namespaces removed ($((SECONDS - t)) s)"

t=$SECONDS
start_launcher "$TMP/resume.log" --nodes 2 -- "$BIN_DIR/recvae_dist" "$CONFIG" "${train_args[@]}" \
  --set "output.dir=$K" --set train.epochs=6 --set output.checkpoint_every=1 --resume
wait_for "$launcher_pid" 300 "resume"
[[ $wait_rc -eq 0 ]] || fail "resume: exit $wait_rc: $(tail -n 20 "$TMP/resume.log")"
grep -q "resumed from" "$TMP/resume.log" || fail "resume: the run did not resume"
[[ -f "$K/final.json" ]] || fail "resume: no final.json"
assert_gone "$launcher_pid" "resume"
say "resume: completed, test ndcg@100 $(final_value "$K/final.json" ndcg@100) ($((SECONDS - t)) s)"

# A SIGKILL of the launcher itself (no trap runs): its reaper removes the cluster and what ran in it.
t=$SECONDS
start_launcher "$TMP/kill9.log" --nodes 2 -- "$BIN_DIR/recvae_dist" "$CONFIG" "${train_args[@]}" \
  --set "output.dir=$TMP/kill9" --set train.epochs=30
deadline=$((SECONDS + 120))
while [[ ! -s "$TMP/kill9/metrics.jsonl" ]] && kill -0 "$launcher_pid" 2>/dev/null && ((SECONDS < deadline)); do
  sleep 0.2
done
[[ -s "$TMP/kill9/metrics.jsonl" ]] || fail "launcher SIGKILL: no epoch within 120 s: $(tail -n 20 "$TMP/kill9.log")"
inside=$(for n in sw n0 n1; do ip netns pids "rvn$launcher_pid$n" 2>/dev/null; done)
[[ -n "$inside" ]] || fail "launcher SIGKILL: no process in the cluster's namespaces"
# (stderr: bash's own "Killed" job notice)
{
  kill -KILL "$launcher_pid"
  wait_for "$launcher_pid" 10 "launcher SIGKILL"
} 2>/dev/null
deadline=$((SECONDS + 30))
while ip netns list | grep -qE "^rvn${launcher_pid}(n[0-9]+|sw)( |\$)" && ((SECONDS < deadline)); do sleep 0.2; done
assert_gone "$launcher_pid" "launcher SIGKILL (30 s later)"
for p in $inside; do
  state=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d ' ' -f 1)
  [[ -z "$state" || "$state" == Z ]] || fail "launcher SIGKILL: process $p ($(cat "/proc/$p/comm")) still runs"
done
grep -q "was killed; removing its cluster" "$TMP/kill9.log" || fail "launcher SIGKILL: the reaper said nothing"
say "launcher SIGKILL: cluster and its $(echo "$inside" | wc -w) processes removed in $((SECONDS - t)) s"

# --- 5. a shaped link --------------------------------------------------------------------------------
t=$SECONDS
EMULATED_NODES_STATS_FILE=$TMP/shaped.stats start_launcher "$TMP/shaped.log" --nodes 2 --link 100mbit -- \
  "$BIN_DIR/recvae_dist" "$CONFIG" "${train_args[@]}" --set "output.dir=$TMP/shaped" --set train.epochs=1 \
  --set recvae.hidden_dim=100 --set recvae.latent_dim=50 --set train.max_steps_per_pass=2
wait_for "$launcher_pid" 300 "100mbit"
[[ $wait_rc -eq 0 ]] || fail "100mbit: exit $wait_rc: $(tail -n 20 "$TMP/shaped.log")"
assert_gone "$launcher_pid" "100mbit"
grep -q "link 100mbit each way per node (tbf)" "$TMP/shaped.log" || fail "100mbit: the description does not name the link"
q=$(grep -c '^qdisc .*qdisc tbf .*rate 100Mbit' "$TMP/shaped.stats")
[[ "$q" == 4 ]] || fail "100mbit: $q of the 4 link ends have a tbf qdisc at 100Mbit: $(cat "$TMP/shaped.stats")"
awk '$1 == "qdisc" { for (i = 1; i < NF; i++) if ($i == "Sent" && $(i + 1) > 0) sent++;
       for (i = 1; i < NF; i++) if ($i == "overlimits" && $(i + 1) + 0 > 0) over++ }
     END { exit !(sent == 4 && over >= 1) }' "$TMP/shaped.stats" ||
  fail "100mbit: the tbf qdiscs did not all send and throttle: $(cat "$TMP/shaped.stats")"
bps=$(grep -o '"comm_\(wire_bytes_per_rank\|seconds\)": *[-0-9.eE+]*' "$TMP/shaped/metrics.jsonl" |
  awk -F': *' '/wire/ { b += $2 } /seconds/ { s += $2 } END { if (s > 0) printf "%.0f\n", b / s }')
if [[ -n "$bps" ]]; then
  ((bps < 16250000)) || fail "100mbit: collectives moved $bps B/s per rank, above 1.3 x 100 Mbit/s (12.5 MB/s)"
  say "100mbit: tbf on all 4 link ends, collectives at $bps B/s per rank ($((SECONDS - t)) s)"
else
  say "100mbit: tbf on all 4 link ends ($((SECONDS - t)) s); no comm_wire_bytes_per_rank /" \
    "comm_seconds in metrics.jsonl, so the throughput was not checked"
fi

# --- 6. a delay needs netem --------------------------------------------------------------------------
EMULATED_NODES_STATS_FILE=$TMP/delay.stats start_launcher "$TMP/delay.log" --nodes 2 --link 1gbit,2ms -- /bin/true
wait_for "$launcher_pid" 120 "1gbit,2ms"
assert_gone "$launcher_pid" "1gbit,2ms"
if grep -q "needs the kernel's netem qdisc (sch_netem), which this kernel lacks" "$TMP/delay.log"; then
  [[ $wait_rc -eq 2 ]] || fail "1gbit,2ms without netem: exit $wait_rc, expected 2"
  [[ ! -s "$TMP/delay.stats" ]] || fail "1gbit,2ms without netem: a cluster was made before refusing"
  say "1gbit,2ms: refused with exit 2 (this kernel has no netem)"
else
  [[ $wait_rc -eq 0 ]] || fail "1gbit,2ms: exit $wait_rc: $(cat "$TMP/delay.log")"
  [[ "$(grep -c '^qdisc .*qdisc netem .*qdisc tbf' "$TMP/delay.stats")" == 4 ]] ||
    fail "1gbit,2ms: not every link end has netem with a tbf below it: $(cat "$TMP/delay.stats")"
  say "1gbit,2ms: netem present, delay applied"
fi

assert_no_new "end of the test"
say "PASS ($((SECONDS - T0)) s)"
exit 0
