#!/usr/bin/env bash
# emulated_mpirun.sh: runs an MPI command across N emulated nodes on this machine.
#
#   launch/emulated_mpirun.sh --nodes N [--link RATE[,DELAY]] [-n RANKS] [--keep-going] -- COMMAND ARGS...
#
# Makes N network namespaces joined by a Linux bridge through veth pairs (launch/lib/emulated_nodes.sh
# describes the layout), optionally shapes each node's link with tc (tbf at RATE both ways; netem
# for DELAY), starts `mpirun` inside node 0 with an rsh agent that enters the nodes with
# `ip netns exec`, runs COMMAND on RANKS ranks placed round robin by node (default RANKS = N;
# ceil(RANKS/N) slots per node), and removes everything it made when the command ends, fails, or on
# Ctrl-C / SIGTERM / SIGHUP. Ranks on different nodes talk over TCP through the veths only; ranks on
# the same node use shared memory, as on a real node.
#
# Needs root, iproute2 (`ip`, `tc`), util-linux (`unshare`) and Open MPI's mpirun. A DELAY needs the
# kernel's netem qdisc (sch_netem); without it the launcher refuses (exit 2) before creating
# anything, or with --keep-going runs without the delay and says so.
#
# Exit status: COMMAND's (through mpirun); 2 for bad arguments or a machine that cannot host the
# cluster (not root, no ip/tc, no netem for a DELAY); 1 when making the cluster failed; 128+signal
# when stopped before COMMAND started.
#
# Signals: the first Ctrl-C (SIGINT), SIGTERM or SIGHUP sends mpirun SIGUSR1
# (EMULATED_NODES_STOP_SIGNAL), which it forwards to every rank at once: recvae_dist finishes its
# step, writes a checkpoint and exits 3 (resume with --resume). Not SIGTERM, because Open MPI
# answers that by killing the ranks itself (SIGTERM, then SIGKILL a second later), which can cut a
# checkpoint short. The second sends SIGTERM to mpirun, the third SIGKILL. SIGUSR1/SIGUSR2 are
# passed on. The namespaces, bridge, veths and temporary files are removed in every case except
# SIGKILL of this script (then `ip netns list | grep rvn<PID>` names what to `ip netns del`).
#
# Environment:
#   MPIRUN                      MPI launcher (default mpirun; Open MPI's)
#   MPIRUN_ARGS                 extra mpirun arguments, word-split
#   EMULATED_NODES_STATS_FILE   before teardown, append each link's byte counters and qdisc
#                               statistics to this file (format: launch/lib/emulated_nodes.sh, emn_stats)
#   EMULATED_NODES_STOP_SIGNAL  what the first Ctrl-C/SIGTERM/SIGHUP sends mpirun (default USR1)
#   EMULATED_NODES_YIELD        1 (default): ranks yield the core while they wait in MPI (the nodes
#                               share this host's cores); 0: Open MPI's busy polling
#   OMP_NUM_THREADS, RECVAE_*   passed to every rank (-x)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=launch/lib/emulated_nodes.sh
source "$script_dir/lib/emulated_nodes.sh"

usage() {
  cat <<'EOF'
usage: launch/emulated_mpirun.sh --nodes N [--link RATE[,DELAY]] [-n RANKS] [--keep-going] [--dry-run] -- COMMAND ARGS...

Runs COMMAND under mpirun across N emulated nodes (network namespaces on a bridge) on this machine,
then removes them.

  --nodes N            number of nodes (1..254)
  --link RATE[,DELAY]  shape each node's link: RATE in tc syntax (1gbit, 10gbit, 500mbit) each way,
                       DELAY (2ms, 500us) node-to-node one way; a DELAY needs the kernel's netem
  -n, --ranks RANKS    MPI ranks (default N), placed round robin by node
  --keep-going         when the kernel lacks netem, run without the DELAY instead of refusing
  --dry-run            print the plan (namespaces, addresses, tc and ip commands, mpirun) and exit
  -h, --help           this text

Needs root, iproute2 (ip, tc), unshare and Open MPI. Exit status: COMMAND's; 2 bad arguments or a
machine that cannot host the cluster; 1 the cluster could not be made. Environment: MPIRUN,
MPIRUN_ARGS, EMULATED_NODES_STATS_FILE (link counters written before teardown),
EMULATED_NODES_STOP_SIGNAL (default USR1: the first Ctrl-C makes recvae_dist checkpoint and exit
3); OMP_NUM_THREADS and RECVAE_* reach every rank.
EOF
}

nodes=""
link=""
ranks=""
keep_going=0
dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --nodes)
      [[ $# -ge 2 ]] || { echo "emulated_mpirun.sh: --nodes needs a number" >&2; exit 2; }
      nodes=$2; shift 2 ;;
    --nodes=*) nodes=${1#--nodes=}; shift ;;
    --link)
      [[ $# -ge 2 ]] || { echo "emulated_mpirun.sh: --link needs RATE[,DELAY]" >&2; exit 2; }
      link=$2; shift 2 ;;
    --link=*) link=${1#--link=}; shift ;;
    -n | -np | --ranks)
      [[ $# -ge 2 ]] || { echo "emulated_mpirun.sh: $1 needs a number" >&2; exit 2; }
      ranks=$2; shift 2 ;;
    --ranks=*) ranks=${1#--ranks=}; shift ;;
    --keep-going) keep_going=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    *) echo "emulated_mpirun.sh: unknown argument '$1' (the command goes after --)" >&2; usage >&2; exit 2 ;;
  esac
done

if [[ -z "$nodes" ]]; then
  echo "emulated_mpirun.sh: --nodes N is required" >&2
  usage >&2
  exit 2
fi
if ! [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || ((nodes > 254)); then
  echo "emulated_mpirun.sh: --nodes must be an integer from 1 to 254, got '$nodes'" >&2
  exit 2
fi
ranks=${ranks:-$nodes}
if ! [[ "$ranks" =~ ^[1-9][0-9]*$ ]]; then
  echo "emulated_mpirun.sh: RANKS must be a positive integer, got '$ranks'" >&2
  exit 2
fi
if [[ $# -eq 0 ]]; then
  echo "emulated_mpirun.sh: no command given (put it after --)" >&2
  exit 2
fi
if [[ -n "$link" ]]; then
  emn_parse_link "$link" || exit 2
fi
emn_plan "$nodes" "$ranks" || exit 2

if ((dry_run)); then
  EMN_USE_DELAY=0
  [[ -n "$EMN_DELAY" ]] && EMN_USE_DELAY=1
  emn_print_plan "$@"
  exit 0
fi

emn_check_prereqs || exit 2

# From here on everything made is removed on every exit path; a signal before the command starts
# ends the script (emn_run installs its own forwarding handlers).
trap 'emn_down' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [[ -n "$EMN_DELAY" ]]; then
  if emn_probe_netem; then
    EMN_USE_DELAY=1
  elif ((keep_going)); then
    emn__say "warning: --link delay $EMN_DELAY needs the kernel's netem qdisc (sch_netem), which" \
      "this kernel lacks; --keep-going: running with the rate only, WITHOUT the delay"
  else
    emn__say "--link delay $EMN_DELAY needs the kernel's netem qdisc (sch_netem), which this kernel" \
      "lacks (tc qdisc add ... netem: \"Specified qdisc kind is unknown\"); give --link $EMN_RATE" \
      "without a delay, or --keep-going to run without it"
    exit 2
  fi
fi

emn_up || exit 1
emn_describe
status=0
emn_run "$@" || status=$?
exit "$status"
