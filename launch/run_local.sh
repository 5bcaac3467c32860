#!/usr/bin/env bash
# run_local.sh: runs recvae_dist on this machine, on one rank or on N ranks through mpirun.
#
#   launch/run_local.sh [-n RANKS] [--nodes N [--link RATE[,DELAY]]] CONFIG.yaml [--set section.key=value ...]
#
# - 1 rank: runs build/recvae_dist directly (no MPI launcher needed).
# - N > 1 ranks: `mpirun -np N --bind-to none ...`, adding --allow-run-as-root when run as root and
#   --oversubscribe when N exceeds the number of cores.
# - --nodes N (any number of ranks, 1 included): through launch/emulated_mpirun.sh, on N emulated
#   nodes (network namespaces on a bridge, ranks round robin by node, TCP between nodes), with each
#   node's link shaped by --link RATE[,DELAY] (tc syntax: 1gbit, 500mbit; a DELAY such as 2ms needs
#   the kernel's netem). Needs root and iproute2; docs/operations.md#emulated-nodes.
# - Unless train.threads is given with --set (or is non-zero in the config's train: section), sets
#   train.threads = max(1, cores / N) so that ranks x threads never exceeds the cores.
#
# Environment:
#   RECVAE_BIN    trainer binary (default: $BIN_DIR/recvae_dist)
#   BIN_DIR       directory of the built binaries (default: <repo>/build)
#   MPIRUN        MPI launcher (default: mpirun)
#   MPIRUN_ARGS   extra launcher arguments, word-split (e.g. "--mca btl self,vader")
#   RECVAE_DRY_RUN=1  print the command instead of running it (same as --dry-run)
#   RECVAE_PLOT=0     do not draw the learning curves at the end
#   RECVAE_PYTHON     Python for the curves (default: python3 or /usr/bin/python3 with matplotlib)
#   EMULATED_NODES_STATS_FILE, EMULATED_NODES_STOP_SIGNAL   with --nodes: see launch/emulated_mpirun.sh
#
# After a successful run, output.dir/curves.png is drawn by launch/analysis/plot_run.py (validation
# metrics and loss terms per epoch) when a Python with matplotlib is found; otherwise one line says
# how to get it. Plotting never changes the exit status. SIGTERM/SIGUSR1/SIGUSR2 are forwarded to
# the trainer (or mpirun); Ctrl-C asks it to checkpoint and stop (SIGTERM), a second Ctrl-C kills
# it.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/.." && pwd)

usage() {
  cat <<EOF
usage: launch/run_local.sh [-n RANKS] [--nodes N [--link RATE[,DELAY]]] [--dry-run] CONFIG.yaml [--set section.key=value ...]

Runs the RecVAE trainer locally: directly for 1 rank, through mpirun for more, or across N
emulated nodes with --nodes. Everything after CONFIG.yaml is passed to recvae_dist (e.g.
--set train.epochs=5).

  -n, --ranks N         number of MPI ranks (default 1)
  --nodes N             run on N emulated nodes (network namespaces joined by a bridge; ranks
                        round robin by node; launch/emulated_mpirun.sh; needs root and iproute2)
  --link RATE[,DELAY]   with --nodes: each node's link, e.g. 1gbit, 10gbit, 500mbit; DELAY (2ms)
                        needs the kernel's netem qdisc
  --dry-run             print the command that would run (and the emulated cluster's plan) and exit
  -h, --help            this text

train.threads defaults to max(1, cores/N) here (cores = $(nproc)), unless you set it with
--set train.threads=T or in the config. Binary: \${RECVAE_BIN:-\${BIN_DIR:-build}/recvae_dist}; launcher:
\${MPIRUN:-mpirun} with \$MPIRUN_ARGS appended. Exit status: that of the trainer (0 ok, 2 bad
input, 1 runtime failure, 3 checkpointed after SIGTERM/SIGUSR1: rerun with --resume).
After a successful run: output.dir/curves.png (launch/analysis/plot_run.py; needs matplotlib,
RECVAE_PLOT=0 skips it).
EOF
}

ranks=1
nodes=""
link=""
dry_run=${RECVAE_DRY_RUN:-0}
config=""
passthrough=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -n|--ranks|-np)
      [[ $# -ge 2 ]] || { echo "run_local.sh: $1 needs a value" >&2; exit 2; }
      ranks=$2; shift 2 ;;
    -n*) ranks=${1#-n}; shift ;;
    --ranks=*) ranks=${1#--ranks=}; shift ;;
    --nodes)
      [[ $# -ge 2 ]] || { echo "run_local.sh: --nodes needs a value" >&2; exit 2; }
      nodes=$2; shift 2 ;;
    --nodes=*) nodes=${1#--nodes=}; shift ;;
    --link)
      [[ $# -ge 2 ]] || { echo "run_local.sh: --link needs RATE[,DELAY]" >&2; exit 2; }
      link=$2; shift 2 ;;
    --link=*) link=${1#--link=}; shift ;;
    --dry-run) dry_run=1; shift ;;
    --set)
      [[ $# -ge 2 ]] || { echo "run_local.sh: --set needs section.key=value" >&2; exit 2; }
      passthrough+=("--set" "$2"); shift 2 ;;
    --set=*) passthrough+=("--set" "${1#--set=}"); shift ;;
    --) shift; passthrough+=("$@"); break ;;
    -*)
      # Unknown options go to the trainer (it reports what it does not know).
      passthrough+=("$1"); shift ;;
    *)
      if [[ -z "$config" ]]; then config=$1; else passthrough+=("$1"); fi
      shift ;;
  esac
done

if [[ -z "$config" ]]; then
  usage >&2
  exit 2
fi
if ! [[ "$ranks" =~ ^[1-9][0-9]*$ ]]; then
  echo "run_local.sh: RANKS must be a positive integer, got '$ranks'" >&2
  exit 2
fi
if [[ -n "$nodes" ]] && ! [[ "$nodes" =~ ^[1-9][0-9]*$ ]]; then
  echo "run_local.sh: --nodes must be a positive integer, got '$nodes'" >&2
  exit 2
fi
if [[ -n "$link" && -z "$nodes" ]]; then
  echo "run_local.sh: --link shapes the links of emulated nodes; give --nodes N as well" >&2
  exit 2
fi
if [[ ! -f "$config" ]]; then
  echo "run_local.sh: config file '$config' not found" >&2
  exit 2
fi

bin=${RECVAE_BIN:-${BIN_DIR:-$repo_dir/build}/recvae_dist}
if [[ ! -x "$bin" ]]; then
  echo "run_local.sh: trainer '$bin' not found or not executable (build it, or set BIN_DIR or RECVAE_BIN)" >&2
  exit 2
fi

cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)

# Did the user choose the thread count? Either on the command line ...
user_threads=0
for ((i = 0; i < ${#passthrough[@]}; i++)); do
  if [[ "${passthrough[$i]}" == "--set" && "${passthrough[$((i + 1))]:-}" == train.threads=* ]]; then
    user_threads=1
  fi
done
# ... or as a non-zero `threads:` inside the config's top-level `train:` section (0 = automatic).
if [[ $user_threads -eq 0 ]]; then
  cfg_threads=$(awk '
    /^[^[:space:]#][^:]*:/ { section = $1; sub(/:.*/, "", section); next }
    section == "train" && /^[[:space:]]+threads[[:space:]]*:/ {
      v = $0; sub(/^[^:]*:[[:space:]]*/, "", v); sub(/[[:space:]]*#.*/, "", v); print v; exit
    }' "$config")
  if [[ -n "$cfg_threads" && "$cfg_threads" != "0" ]]; then
    user_threads=1
  fi
fi

threads_args=()
if [[ $user_threads -eq 0 ]]; then
  threads=$((cores / ranks))
  ((threads >= 1)) || threads=1
  threads_args=(--set "train.threads=$threads")
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads}
fi

cmd=()
if [[ -n "$nodes" ]]; then
  # launch/emulated_mpirun.sh makes the nodes, runs mpirun inside node 0 (MPIRUN, MPIRUN_ARGS and
  # OMP_NUM_THREADS are honoured there) and removes the nodes again.
  cmd=(bash "$script_dir/emulated_mpirun.sh" --nodes "$nodes")
  if [[ -n "$link" ]]; then cmd+=(--link "$link"); fi
  cmd+=(-n "$ranks" -- "$bin" "$config" "${threads_args[@]}" "${passthrough[@]}")
elif [[ $ranks -eq 1 ]]; then
  cmd=("$bin" "$config" "${threads_args[@]}" "${passthrough[@]}")
else
  launcher=${MPIRUN:-mpirun}
  if ! command -v "$launcher" >/dev/null 2>&1; then
    echo "run_local.sh: '$launcher' not found; install openmpi-bin (launch/setup/install_deps.sh) or set MPIRUN" >&2
    exit 2
  fi
  cmd=("$launcher" -np "$ranks" --bind-to none)
  if [[ $(id -u) -eq 0 ]]; then
    cmd+=(--allow-run-as-root)
  fi
  if ((ranks > cores)); then
    cmd+=(--oversubscribe)
  fi
  if [[ -n "${OMP_NUM_THREADS:-}" ]]; then
    cmd+=(-x OMP_NUM_THREADS)
  fi
  if [[ -n "${MPIRUN_ARGS:-}" ]]; then
    # shellcheck disable=SC2206  # word splitting is intended
    extra=($MPIRUN_ARGS)
    cmd+=("${extra[@]}")
  fi
  cmd+=("$bin" "$config" "${threads_args[@]}" "${passthrough[@]}")
fi

if [[ "$dry_run" == "1" ]]; then
  printf '%q ' "${cmd[@]}"
  echo
  if [[ -n "$nodes" ]]; then
    # The cluster's plan (what the launcher would create and run).
    "${cmd[0]}" "${cmd[1]}" --dry-run "${cmd[@]:2}"
  fi
  exit 0
fi
echo "run_local.sh: ${cmd[*]}" >&2
# Not `exec`: the trainer runs as a child so that its learning curves (output.dir/curves.png,
# launch/analysis/plot_run.py) can be drawn when it succeeds; signals are forwarded to it and the
# exit status is the trainer's (launch/lib/plot.sh: recvae_run_and_plot).
# shellcheck source=launch/lib/plot.sh
source "$script_dir/lib/plot.sh"
status=0
recvae_run_and_plot "$script_dir" "$config" "${cmd[@]}" || status=$?
exit "$status"
