# shellcheck shell=bash
# launch/lib/emulated_nodes.sh: an emulated cluster on one machine, for launching MPI jobs "across
# nodes" without having them. Sourced, not run; launch/emulated_mpirun.sh is the command that
# uses it (launch/run_local.sh and launch/scaling_study.sh go through that with --nodes).
#
# What a cluster of N nodes is (every name carries the PID of the shell that sourced this file, so
# two clusters never share a name and cleanup touches only its own):
#   - node i (0 <= i < N): network namespace rvn<pid>n<i> with `lo` up and one veth, rvv<pid>n<i>,
#     address 10.213.<x>.<i+1>/24 (x = 1 + pid mod 254, so concurrent clusters mostly get different
#     subnets; as the addresses exist only inside each cluster's own namespaces, never on the host,
#     two clusters on the same subnet would not clash either);
#   - the switch: namespace rvn<pid>sw holding the Linux bridge rvb<pid>, with the other end of
#     every node's veth pair, rvv<pid>s<i>, as a port. The bridge lives in its own namespace, not
#     the host's, so the host's firewall (br_netfilter, Docker's FORWARD rules) never sees the
#     traffic and nothing of the cluster is visible in the host's `ip link`;
#   - with a link RATE: `tc qdisc ... tbf rate RATE` on both ends of each node's veth pair (the
#     node's egress and the bridge port's egress), so each node has RATE in and RATE out, as a NIC
#     on a switch port would; with a DELAY as well: netem (DELAY/2 on each of the two egresses, so
#     node-to-node one-way latency is DELAY) with the tbf as its child. Kernels without netem
#     (sch_netem) are detected before anything is created;
#   - each process started in a node also gets its own UTS namespace whose hostname is the node's
#     name: Open MPI then sees N hosts, gives each its own session directory and shared-memory
#     segment names (with one shared hostname, ranks on two "nodes" with the same local rank open
#     the same vader segment in /dev/shm and crash), and MPI_COMM_TYPE_SHARED groups the ranks of
#     one node (local_size = ranks on that node).
# Open MPI is started inside node 0 (mpirun there), with a generated rsh agent that enters a node
# with `ip netns exec` instead of ssh, a hostfile naming the nodes, ranks placed round-robin by node
# (--map-by node), the ob1 PML with the self, vader (same node only) and tcp BTLs, and both the
# out-of-band and the MPI TCP traffic restricted to the cluster's subnet, so every byte between
# ranks on different nodes crosses the veths (and their qdiscs).
# Cleanup: emn_down (from the launcher's EXIT trap) removes the namespaces by name; a reaper
# process started by emn_up does the same when the launcher is SIGKILLed (emn__start_reaper).
#
# Functions (emn_*; globals EMN_*; both private when they start with emn__/EMN__):
#   emn_parse_link SPEC         RATE[,DELAY] -> EMN_RATE, EMN_DELAY; status 2 with a message if bad
#   emn_plan N RANKS            names, addresses, slots (no side effects; no root needed)
#   emn_check_prereqs           root, ip, tc, unshare, hostname, mpirun; status 2 with a message
#   emn_probe_netem             status 0 when the kernel has netem (makes and removes a namespace)
#   emn_up                      creates the cluster (emn_down undoes whatever part was made)
#   emn_mpirun_command CMD...   the mpirun command line in EMN_MPIRUN_CMD
#   emn_run CMD...              runs it, forwarding signals; returns its exit status
#   emn_stats FILE              appends the links' counters and qdisc statistics to FILE
#   emn_down                    kills what still runs in the namespaces, deletes them, temp dir
#   emn_describe                the one-line description printed at start-up
#   emn_print_plan CMD...       the dry-run text: every command emn_up would run, then mpirun's
#
# Environment read: MPIRUN (default mpirun), MPIRUN_ARGS (extra mpirun arguments, word-split),
# EMULATED_NODES_STATS_FILE (emn_down appends emn_stats there before tearing down),
# EMULATED_NODES_STOP_SIGNAL (what the first Ctrl-C / SIGTERM sends mpirun; default USR1, see
# emn__on_signal),
# OMP_NUM_THREADS and every RECVAE_* variable (passed to the ranks with -x).

EMN_PID=$$
EMN_NAME=rvn$EMN_PID
EMN_NODES=0
EMN_RANKS=0
EMN_SLOTS=0
EMN_RATE=""
EMN_DELAY=""
EMN_USE_DELAY=0
EMN_SUBNET=""
EMN_SWITCH_NS=""
EMN_BRIDGE=""
EMN_NS=()
EMN_VETH_NODE=()
EMN_VETH_SWITCH=()
EMN_ADDR=()
EMN_TMP=""
EMN_MPIRUN_CMD=()
EMN_CHILD=""
EMN_DRY_RUN=0
EMN_CREATED_NS=()
EMN__INTERRUPTS=0
EMN__SIGNALLED=""
EMN__DOWN_DONE=0
EMN__PROBE_NS=""
EMN__REAPER=""

emn__say() { echo "emulated_nodes: $*" >&2; }

# Runs a command, or only prints it (shell-quoted) when EMN_DRY_RUN=1.
emn__do() {
  if [[ "$EMN_DRY_RUN" == "1" ]]; then
    echo "  $(emn__quote "$@")"
    return 0
  fi
  "$@"
}

# The words quoted for a shell, plain where they need no quoting.
emn__quote() {
  local w out=""
  for w in "$@"; do
    if [[ "$w" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+="${out:+ }$w"
    else
      out+="${out:+ }$(printf '%q' "$w")"
    fi
  done
  printf '%s\n' "$out"
}

# emn_parse_link SPEC: RATE[,DELAY]. RATE in tc's syntax with a unit (1gbit, 500mbit, 10Gbit,
# 125mbps = bytes/s); DELAY like 2ms, 500us, 0.5ms. Sets EMN_RATE, EMN_DELAY.
emn_parse_link() {
  local spec=$1 rate delay=""
  rate=${spec%%,*}
  if [[ "$spec" == *,* ]]; then delay=${spec#*,}; fi
  if ! [[ "${rate,,}" =~ ^[0-9]+([.][0-9]+)?([kmgt]i?)?(bit|bps)$ ]]; then
    emn__say "bad --link rate '$rate': give a tc rate with its unit, e.g. 1gbit, 10gbit, 500mbit"
    return 2
  fi
  if (($(emn__rate_bytes "$rate") < 1)); then
    emn__say "bad --link rate '$rate': it must be at least 1 byte per second"
    return 2
  fi
  if [[ -n "$delay" ]] && ! [[ "$delay" =~ ^[0-9]+([.][0-9]+)?(s|ms|us)$ ]]; then
    emn__say "bad --link delay '$delay': give a time with its unit, e.g. 2ms, 500us"
    return 2
  fi
  EMN_RATE=$rate
  EMN_DELAY=$delay
}

# Bytes per second of a tc rate (as tc reads it: k = 1000, ki = 1024; bit or bps = bytes/s).
emn__rate_bytes() {
  awk -v r="${1,,}" 'BEGIN {
    n = r; sub(/[a-z]+$/, "", n); u = substr(r, length(n) + 1)
    m = 1
    if (u ~ /^ki/) m = 1024; else if (u ~ /^mi/) m = 1024^2; else if (u ~ /^gi/) m = 1024^3
    else if (u ~ /^ti/) m = 1024^4; else if (u ~ /^k/) m = 1e3; else if (u ~ /^m/) m = 1e6
    else if (u ~ /^g/) m = 1e9; else if (u ~ /^t/) m = 1e12
    if (u ~ /bit$/) m /= 8
    printf "%.0f\n", n * m
  }'
}

# Half of a delay, in microseconds (tc's "us"), at least 1.
emn__half_delay_us() {
  awk -v d="$1" 'BEGIN {
    n = d; sub(/[a-z]+$/, "", n); u = substr(d, length(n) + 1)
    m = (u == "s") ? 1e6 : (u == "ms") ? 1e3 : 1
    h = n * m / 2; if (h < 1) h = 1
    printf "%.0fus\n", h
  }'
}

# emn_plan N RANKS: names, addresses and slots of the cluster (nothing is created).
emn_plan() {
  local n=$1 ranks=$2 i x
  EMN_NODES=$n
  EMN_RANKS=$ranks
  EMN_SLOTS=$(((ranks + n - 1) / n))
  x=$((1 + EMN_PID % 254))
  EMN_SUBNET=10.213.$x.0/24
  EMN_SWITCH_NS=${EMN_NAME}sw
  EMN_BRIDGE=rvb$EMN_PID
  EMN_NS=()
  EMN_VETH_NODE=()
  EMN_VETH_SWITCH=()
  EMN_ADDR=()
  for ((i = 0; i < n; i++)); do
    EMN_NS+=("${EMN_NAME}n$i")
    EMN_VETH_NODE+=("rvv${EMN_PID}n$i")
    EMN_VETH_SWITCH+=("rvv${EMN_PID}s$i")
    EMN_ADDR+=("10.213.$x.$((i + 1))")
  done
  # Linux interface names have at most 15 characters (IFNAMSIZ - 1).
  for i in "$EMN_BRIDGE" "${EMN_VETH_NODE[@]}" "${EMN_VETH_SWITCH[@]}"; do
    if ((${#i} > 15)); then
      emn__say "interface name '$i' is longer than 15 characters (too many nodes?)"
      return 2
    fi
  done
}

# The ranks placed on node i by --map-by node (round robin): i, i + N, i + 2N, ...
emn__ranks_of() {
  local i=$1 r out=""
  for ((r = i; r < EMN_RANKS; r += EMN_NODES)); do out+="${out:+,}$r"; done
  echo "${out:-none}"
}

# emn_describe: one line for stderr.
emn_describe() {
  local link per counts="" i c
  if [[ -z "$EMN_RATE" ]]; then
    link="unshaped veth links"
  else
    link="link $EMN_RATE each way per node (tbf)"
    if [[ -n "$EMN_DELAY" ]]; then
      if ((EMN_USE_DELAY)); then
        link+=", $EMN_DELAY node-to-node one-way delay (netem)"
      else
        link+=", delay $EMN_DELAY NOT applied (no netem)"
      fi
    fi
  fi
  for ((i = 0; i < EMN_NODES; i++)); do
    c=$(((EMN_RANKS - i + EMN_NODES - 1) / EMN_NODES))
    ((c < 0)) && c=0
    counts+="${counts:+,}$c"
  done
  if ((EMN_RANKS % EMN_NODES == 0)); then
    per="$((EMN_RANKS / EMN_NODES)) per node"
  else
    per="per node $counts"
  fi
  local names=${EMN_NS[0]}
  ((EMN_NODES > 1)) && names+="..n$((EMN_NODES - 1))"
  emn__say "$EMN_NODES node(s) $names on bridge $EMN_BRIDGE" \
    "($EMN_SUBNET), $link, $EMN_RANKS rank(s): $per (round robin by node)"
}

# emn_check_prereqs: what creating the cluster and launching into it needs; status 2 with a message.
emn_check_prereqs() {
  local c launcher=${MPIRUN:-mpirun}
  if [[ $(id -u) -ne 0 ]]; then
    emn__say "needs root (network namespaces, veth pairs, a bridge, tc); run it as root or with sudo"
    return 2
  fi
  for c in ip tc unshare hostname; do
    if ! command -v "$c" >/dev/null 2>&1; then
      case "$c" in
        ip | tc) emn__say "needs '$c' (iproute2: apt-get install iproute2, or launch/setup/install_deps.sh)" ;;
        *) emn__say "needs '$c' (util-linux / hostname)" ;;
      esac
      return 2
    fi
  done
  if ! ip netns list >/dev/null 2>&1; then
    emn__say "'ip netns' does not work here (iproute2 without network namespace support?)"
    return 2
  fi
  if ! command -v "$launcher" >/dev/null 2>&1; then
    emn__say "'$launcher' not found; install openmpi-bin (launch/setup/install_deps.sh) or set MPIRUN"
    return 2
  fi
}

# emn_probe_netem: status 0 when a netem qdisc can be added (on `lo` of a throwaway namespace).
emn_probe_netem() {
  local probe=${EMN_NAME}probe ok=1
  ip netns add "$probe" 2>/dev/null || return 1
  EMN__PROBE_NS=$probe
  if ip -n "$probe" link set lo up 2>/dev/null &&
    tc -n "$probe" qdisc add dev lo root netem delay 1ms 2>/dev/null; then
    ok=0
  fi
  ip netns del "$probe" 2>/dev/null || true
  EMN__PROBE_NS=""
  return "$ok"
}

# The tc commands of one veth end (in namespace ns).
emn__shape() {
  local ns=$1 dev=$2 bytes burst half
  bytes=$(emn__rate_bytes "$EMN_RATE")
  # burst: 1 ms at the rate, at least 16 KiB (a few full-size packets); queue: 50 ms at the rate.
  burst=$((bytes / 1000))
  ((burst < 16384)) && burst=16384
  if ((EMN_USE_DELAY)); then
    half=$(emn__half_delay_us "$EMN_DELAY")
    emn__do tc -n "$ns" qdisc add dev "$dev" root handle 1: netem delay "$half" limit 100000 || return 1
    emn__do tc -n "$ns" qdisc add dev "$dev" parent 1:1 handle 10: tbf rate "$EMN_RATE" \
      burst "$burst" latency 50ms || return 1
  else
    emn__do tc -n "$ns" qdisc add dev "$dev" root handle 1: tbf rate "$EMN_RATE" \
      burst "$burst" latency 50ms || return 1
  fi
}

# Creates a namespace and records it for emn_down (only after it exists).
emn__add_ns() {
  emn__do ip netns add "$1" || return 1
  if [[ "$EMN_DRY_RUN" != "1" ]]; then EMN_CREATED_NS+=("$1"); fi
}

# The network part of emn_up (and of emn_print_plan).
emn__build() {
  local i ns vn vs
  emn__add_ns "$EMN_SWITCH_NS" || return 1
  emn__do ip -n "$EMN_SWITCH_NS" link add "$EMN_BRIDGE" type bridge || return 1
  emn__do ip -n "$EMN_SWITCH_NS" link set "$EMN_BRIDGE" up || return 1
  for ((i = 0; i < EMN_NODES; i++)); do
    ns=${EMN_NS[$i]}
    vn=${EMN_VETH_NODE[$i]}
    vs=${EMN_VETH_SWITCH[$i]}
    emn__add_ns "$ns" || return 1
    emn__do ip -n "$ns" link set lo up || return 1
    # Both ends are made inside their namespaces: nothing appears in the host's namespace.
    emn__do ip link add "$vn" netns "$ns" type veth peer name "$vs" netns "$EMN_SWITCH_NS" || return 1
    emn__do ip -n "$EMN_SWITCH_NS" link set "$vs" master "$EMN_BRIDGE" || return 1
    emn__do ip -n "$EMN_SWITCH_NS" link set "$vs" up || return 1
    emn__do ip -n "$ns" addr add "${EMN_ADDR[$i]}/24" dev "$vn" || return 1
    emn__do ip -n "$ns" link set "$vn" up || return 1
    if [[ -n "$EMN_RATE" ]]; then
      emn__shape "$ns" "$vn" || return 1
      emn__shape "$EMN_SWITCH_NS" "$vs" || return 1
    fi
  done
}

# The rsh agent Open MPI calls as `AGENT [OPTIONS] HOST COMMAND...` (COMMAND is one shell command
# line, e.g. `orted --daemonize -mca ess "env" ...`): runs COMMAND in node HOST's network namespace
# and in a UTS namespace of its own whose hostname is HOST.
emn__write_agent() {
  local f=$1
  cat >"$f" <<EOF
#!/bin/sh
# rsh agent of the emulated cluster $EMN_NAME (launch/lib/emulated_nodes.sh); Open MPI calls it as
#   AGENT [OPTIONS] HOST COMMAND...
while [ \$# -gt 0 ]; do
  case "\$1" in -*) shift ;; *) break ;; esac
done
host=\$1
shift
case "\$host" in
  ${EMN_NAME}n[0-9] | ${EMN_NAME}n[0-9][0-9] | ${EMN_NAME}n[0-9][0-9][0-9]) ;;
  *) echo "emulated_nodes agent: '\$host' is not a node of cluster $EMN_NAME" >&2; exit 255 ;;
esac
exec ip netns exec "\$host" unshare --uts /bin/sh -c 'hostname "\$0" && exec /bin/sh -c "\$1"' "\$host" "\$*"
EOF
  chmod 755 "$f"
}

# Start time (clock ticks since boot) of process $1; status 1 when there is no such process.
emn__starttime() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086  # the fields after the command name, one per word
  set -- $stat
  echo "${20}"
}

# The reaper: a background subshell that outlives a SIGKILL of this shell (which no trap sees:
# `kill -9`, the OOM killer, a launcher's second Ctrl-C). It waits until this shell (the same pid
# and start time) is gone, then removes the cluster by its planned names. emn_down stops it.
emn__start_reaper() {
  local start
  start=$(emn__starttime "$EMN_PID") || return 0
  emn__reap "$start" </dev/null >/dev/null &
  EMN__REAPER=$!
}

# The reaper's body (runs in the background subshell): $1 = the launcher's start time.
emn__reap() {
  local start=$1 ns
  local -
  set +e
  trap '' INT TERM HUP USR1 USR2
  trap - EXIT
  while [[ "$(emn__starttime "$EMN_PID")" == "$start" ]]; do sleep 1; done
  EMN_CREATED_NS=()
  for ns in "$EMN_SWITCH_NS" "${EMN_NS[@]}" "${EMN_NAME}probe"; do
    if ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF "$ns"; then EMN_CREATED_NS+=("$ns"); fi
  done
  if ((${#EMN_CREATED_NS[@]} > 0)) || [[ -d "$EMN_TMP" ]]; then
    emn__say "the launcher (pid $EMN_PID) was killed; removing its cluster $EMN_NAME"
  fi
  EMN_CHILD=""
  EMN__REAPER=""
  emn_down
}

# emn_up: creates the cluster. On failure everything made so far stays recorded for emn_down.
emn_up() {
  local i
  EMN_DRY_RUN=0
  EMN_TMP=$(mktemp -d "${TMPDIR:-/tmp}/$EMN_NAME.XXXXXX") || {
    emn__say "mktemp failed"
    return 1
  }
  emn__start_reaper
  emn__write_agent "$EMN_TMP/agent"
  for ((i = 0; i < EMN_NODES; i++)); do
    echo "${EMN_NS[$i]} slots=$EMN_SLOTS"
  done >"$EMN_TMP/hostfile"
  if ! emn__build; then
    emn__say "could not create the cluster (the failed command's message is above)"
    return 1
  fi
}

# emn_mpirun_command CMD...: EMN_MPIRUN_CMD = mpirun inside node 0 running CMD on the cluster.
emn_mpirun_command() {
  local tmp=${EMN_TMP:-<tmpdir>} v extra
  # shellcheck disable=SC2016,SC2054  # $0 and $@ are for that sh; commas belong to the values
  EMN_MPIRUN_CMD=(ip netns exec "${EMN_NS[0]}" unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"'
    "${EMN_NS[0]}" "${MPIRUN:-mpirun}" --hostfile "$tmp/hostfile" -np "$EMN_RANKS" --map-by node
    --bind-to none --oversubscribe
    --mca plm_rsh_agent "$tmp/agent" --mca plm_rsh_no_tree_spawn 1
    --mca pml ob1 --mca btl self,vader,tcp
    --mca btl_tcp_if_include "$EMN_SUBNET" --mca oob_tcp_if_include "$EMN_SUBNET")
  # Every node shares this host's cores. A rank waiting in a collective polls its transports; when
  # the ranks outnumber the cores, that polling takes the core from the rank it waits for (tiny
  # collectives over 3 nodes on 2 cores took 8-15 ms). Yielding when idle gives it back.
  # EMULATED_NODES_YIELD=0 turns it off.
  if [[ "${EMULATED_NODES_YIELD:-1}" == 1 ]]; then EMN_MPIRUN_CMD+=(--mca mpi_yield_when_idle 1); fi
  if [[ $(id -u) -eq 0 ]]; then EMN_MPIRUN_CMD+=(--allow-run-as-root); fi
  if [[ -n "${OMP_NUM_THREADS:-}" ]]; then EMN_MPIRUN_CMD+=(-x OMP_NUM_THREADS); fi
  while IFS= read -r v; do
    [[ -n "$v" ]] && EMN_MPIRUN_CMD+=(-x "$v")
  done < <(compgen -e | grep '^RECVAE_' || true)
  if [[ -n "${MPIRUN_ARGS:-}" ]]; then
    # shellcheck disable=SC2206  # word splitting is intended
    extra=($MPIRUN_ARGS)
    EMN_MPIRUN_CMD+=("${extra[@]}")
  fi
  EMN_MPIRUN_CMD+=("$@")
}

# emn_print_plan CMD...: what emn_up and emn_run would do, without doing it.
emn_print_plan() {
  local i
  echo "emulated cluster $EMN_NAME (dry run: nothing is created)"
  echo "  switch: namespace $EMN_SWITCH_NS, bridge $EMN_BRIDGE; subnet $EMN_SUBNET"
  for ((i = 0; i < EMN_NODES; i++)); do
    echo "  node $i: namespace ${EMN_NS[$i]}, veth ${EMN_VETH_NODE[$i]} <-> ${EMN_VETH_SWITCH[$i]}" \
      "(bridge port), address ${EMN_ADDR[$i]}, ranks $(emn__ranks_of "$i")"
  done
  if [[ -n "$EMN_DELAY" ]]; then
    echo "  (a delay needs the kernel's netem qdisc, checked when it runs)"
  fi
  echo "commands:"
  EMN_DRY_RUN=1
  emn__build
  echo "  (temporary directory <tmpdir>: hostfile with 'NODE slots=$EMN_SLOTS' per node, the rsh agent)"
  emn_mpirun_command "$@"
  echo "mpirun:"
  echo "  $(emn__quote "${EMN_MPIRUN_CMD[@]}")"
}

# Signal handlers while the command runs. The first SIGINT, SIGTERM or SIGHUP sends mpirun
# $EMULATED_NODES_STOP_SIGNAL (default USR1), which mpirun forwards to every rank at once:
# recvae_dist then finishes its step, writes a checkpoint and exits 3 (a command without a handler
# just ends). Not SIGTERM: Open MPI answers SIGTERM by stopping the ranks itself, SIGCONT, 1 s,
# SIGTERM, 1 s, SIGKILL (odls_base_sigkill_timeout), which may cut a checkpoint short. The second
# sends SIGTERM (that sequence), the third SIGKILL. SIGUSR1 and SIGUSR2 are passed on as they are.
# shellcheck disable=SC2317  # invoked by traps
emn__on_signal() {
  local sig=$1 stop=${EMULATED_NODES_STOP_SIGNAL:-USR1}
  EMN__SIGNALLED=$sig
  [[ -n "$EMN_CHILD" ]] || return 0
  case "$sig" in
    INT | TERM | HUP)
      EMN__INTERRUPTS=$((EMN__INTERRUPTS + 1))
      case "$EMN__INTERRUPTS" in
        1)
          emn__say "got SIG$sig: asking the job to stop (SIG$stop to mpirun, which forwards it to the" \
            "ranks; recvae_dist checkpoints and exits 3); again: SIGTERM, a third time: SIGKILL"
          kill -s "$stop" "$EMN_CHILD" 2>/dev/null || true
          ;;
        2)
          emn__say "got SIG$sig again: SIGTERM to mpirun (it ends the ranks)"
          kill -s TERM "$EMN_CHILD" 2>/dev/null || true
          ;;
        *)
          emn__say "got SIG$sig a third time: SIGKILL to mpirun"
          kill -s KILL "$EMN_CHILD" 2>/dev/null || true
          ;;
      esac
      ;;
    *) kill -s "$sig" "$EMN_CHILD" 2>/dev/null || true ;;
  esac
}

# emn_run CMD...: runs CMD on the cluster under mpirun; returns mpirun's exit status.
emn_run() {
  local status again sig
  emn_mpirun_command "$@"
  "${EMN_MPIRUN_CMD[@]}" &
  EMN_CHILD=$!
  for sig in INT TERM HUP USR1 USR2; do
    # shellcheck disable=SC2064  # $sig now
    trap "emn__on_signal $sig" "$sig"
  done
  # `wait` returns early (> 128) when a trapped signal arrives: wait again while mpirun lives.
  while true; do
    status=0
    wait "$EMN_CHILD" || status=$?
    if ((status > 128)) && [[ -n "$EMN__SIGNALLED" ]]; then
      EMN__SIGNALLED=""
      if kill -0 "$EMN_CHILD" 2>/dev/null; then continue; fi
      again=0
      wait "$EMN_CHILD" 2>/dev/null || again=$?
      ((again != 127)) && status=$again
    fi
    break
  done
  EMN_CHILD=""
  return "$status"
}

# One counter of a device in a namespace (sysfs as `ip netns exec` mounts it for the namespace).
emn__counter() {
  ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3" 2>/dev/null || echo "?"
}

# emn_stats FILE: appends, per node, both ends' byte and packet counters and qdisc statistics:
#   node I ns NS dev DEV rx_bytes B tx_bytes B rx_packets P tx_packets P
#   port I ns SWITCH dev DEV rx_bytes ... (the bridge's end of node I's link)
#   qdisc I node|port DEV: <`tc -s qdisc show dev DEV`, one line>
emn_stats() {
  local f=$1 i ns dev side
  local -
  set +e
  {
    echo "# emulated_nodes $EMN_NAME: $EMN_NODES node(s), ranks $EMN_RANKS, link ${EMN_RATE:-none}${EMN_DELAY:+,$EMN_DELAY}, subnet $EMN_SUBNET"
    for ((i = 0; i < EMN_NODES; i++)); do
      for side in node port; do
        if [[ $side == node ]]; then
          ns=${EMN_NS[$i]}
          dev=${EMN_VETH_NODE[$i]}
        else
          ns=$EMN_SWITCH_NS
          dev=${EMN_VETH_SWITCH[$i]}
        fi
        echo "$side $i ns $ns dev $dev rx_bytes $(emn__counter "$ns" "$dev" rx_bytes)" \
          "tx_bytes $(emn__counter "$ns" "$dev" tx_bytes)" \
          "rx_packets $(emn__counter "$ns" "$dev" rx_packets)" \
          "tx_packets $(emn__counter "$ns" "$dev" tx_packets)"
        echo "qdisc $i $side $dev: $(tc -n "$ns" -s qdisc show dev "$dev" 2>/dev/null | tr -s '\n ' '  ')"
      done
    done
  } >>"$f" 2>/dev/null || emn__say "could not write the statistics to $f"
}

# Status 0 when namespace $1 is one this run created.
emn__created() {
  local ns
  for ns in "${EMN_CREATED_NS[@]}"; do [[ "$ns" == "$1" ]] && return 0; done
  return 1
}

# Pids of the processes in namespace $1.
emn__pids_in() {
  ip netns pids "$1" 2>/dev/null || true
}

# emn_down: ends what still runs in the cluster's namespaces (orted daemons, ranks: they are in
# this cluster's namespaces, so they are this run's), deletes the namespaces this run created (the
# veths and the bridge go with them) and the temporary directory. Idempotent; by name only.
emn_down() {
  local ns pids i any phase
  # Best effort to the end: no step may stop the cleanup (a caller's `set -e` included).
  local -
  set +e
  ((EMN__DOWN_DONE)) && return 0
  EMN__DOWN_DONE=1
  if [[ -n "$EMN_CHILD" ]] && kill -0 "$EMN_CHILD" 2>/dev/null; then
    kill -s TERM "$EMN_CHILD" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$EMN_CHILD" 2>/dev/null || break
      sleep 0.2
    done
    kill -s KILL "$EMN_CHILD" 2>/dev/null || true
  fi
  if [[ -n "${EMULATED_NODES_STATS_FILE:-}" && ${#EMN_CREATED_NS[@]} -gt 0 ]]; then
    emn_stats "$EMULATED_NODES_STATS_FILE"
  fi
  if ((${#EMN_CREATED_NS[@]} > 0)); then
    # Daemons normally leave with mpirun: give them 3 s, then SIGTERM and 3 s, then SIGKILL.
    for phase in wait TERM KILL; do
      if [[ "$phase" != wait ]]; then
        for ns in "${EMN_CREATED_NS[@]}"; do
          pids=$(emn__pids_in "$ns")
          # shellcheck disable=SC2086  # one pid per word
          [[ -n "$pids" ]] && kill -s "$phase" $pids 2>/dev/null
        done
      fi
      for ((i = 0; i < 15; i++)); do
        any=0
        for ns in "${EMN_CREATED_NS[@]}"; do
          [[ -n "$(emn__pids_in "$ns")" ]] && any=1
        done
        ((any)) || break
        sleep 0.2
      done
      ((any)) || break
    done
    # The links by name (deleting one end of a veth pair deletes both), then the namespaces, which
    # takes whatever is left in them (qdiscs, lo).
    for ((i = 0; i < EMN_NODES; i++)); do
      if emn__created "${EMN_NS[$i]}"; then ip -n "${EMN_NS[$i]}" link del "${EMN_VETH_NODE[$i]}" 2>/dev/null; fi
    done
    if emn__created "$EMN_SWITCH_NS"; then ip -n "$EMN_SWITCH_NS" link del "$EMN_BRIDGE" 2>/dev/null; fi
    for ns in "${EMN_CREATED_NS[@]}"; do
      ip netns del "$ns" 2>/dev/null || emn__say "could not delete namespace $ns (ip netns del $ns)"
    done
    EMN_CREATED_NS=()
  fi
  if [[ -n "$EMN__PROBE_NS" ]]; then
    ip netns del "$EMN__PROBE_NS" 2>/dev/null || true
    EMN__PROBE_NS=""
  fi
  if [[ -n "$EMN_TMP" && -d "$EMN_TMP" ]]; then
    rm -rf "$EMN_TMP"
    EMN_TMP=""
  fi
  if [[ -n "$EMN__REAPER" ]]; then
    kill -s KILL "$EMN__REAPER" 2>/dev/null || true
    wait "$EMN__REAPER" 2>/dev/null || true
    EMN__REAPER=""
  fi
  return 0
}
