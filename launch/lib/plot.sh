# shellcheck shell=bash
# launch/lib/plot.sh: learning curves at the end of a run (launch/run_local.sh, launch/quickstart.sh
# through it, launch/slurm_recvae.sbatch). Sourced, not run. Plotting never changes a run's exit
# status: without a Python that has matplotlib one line says how to get the plot.
#
# Which directory did the run write? The trainer's own last stderr line names it:
#   best epoch 11: test ndcg@100 0.4551 ... (popularity ...); runs/quickstart/final.json
# (printed by rank 0 after final.json is written, relative to the trainer's working directory,
# which is the launching shell's). Reading it back is more robust than re-parsing the config:
# it is the resolved output.dir whatever set it (YAML in any style, --set output.dir=..., a later
# --set winning over an earlier one, defaults) and it exists only when final.json was written. So
# the launchers copy the trainer's stderr through `tee` into a temporary file
# (recvae_capture_start) and read that line (recvae_run_dir_from_log). Only when the line is
# missing (e.g. a trainer that prints something else) is output.dir guessed from the command line
# and the YAML (recvae_run_dir_from_args).
#
# Set RECVAE_PLOT=0 to skip the curves.

_recvae_plot_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=launch/lib/python.sh
source "$_recvae_plot_lib_dir/python.sh"

RECVAE_CAPTURE_FILE=""
RECVAE_CAPTURE_FD=""
RECVAE_CAPTURE_PID=""

# Opens file descriptor $RECVAE_CAPTURE_FD: what is written to it goes to this shell's stderr and
# is also appended to the temporary file $RECVAE_CAPTURE_FILE. Status 1 (nothing opened) on failure.
recvae_capture_start() {
  RECVAE_CAPTURE_FILE=$(mktemp "${TMPDIR:-/tmp}/recvae-stderr.XXXXXX" 2>/dev/null) || {
    RECVAE_CAPTURE_FILE=""
    return 1
  }
  exec {RECVAE_CAPTURE_FD}> >(tee -a "$RECVAE_CAPTURE_FILE" >&2)
  RECVAE_CAPTURE_PID=$!
}

# Closes the descriptor and waits until tee has written everything (call before reading the file).
recvae_capture_stop() {
  if [[ -n "$RECVAE_CAPTURE_FD" ]]; then
    exec {RECVAE_CAPTURE_FD}>&-
    wait "$RECVAE_CAPTURE_PID" 2>/dev/null || true
    RECVAE_CAPTURE_FD=""
  fi
}

# Removes the temporary file.
recvae_capture_cleanup() {
  recvae_capture_stop
  if [[ -n "$RECVAE_CAPTURE_FILE" ]]; then
    rm -f "$RECVAE_CAPTURE_FILE"
    RECVAE_CAPTURE_FILE=""
  fi
}

# recvae_run_dir_from_log FILE: prints the run directory named by the trainer's last
# "best epoch ...; DIR/final.json" line in FILE; status 1 when there is none.
recvae_run_dir_from_log() {
  local dir
  [[ -n "${1:-}" && -f "$1" ]] || return 1
  dir=$(sed -n 's|^best epoch [^:]*: .*); \(.*\)/final\.json[[:space:]]*$|\1|p' "$1" | tail -n 1)
  [[ -n "$dir" ]] || return 1
  printf '%s\n' "$dir"
}

# recvae_run_dir_from_args CONFIG [ARGS...]: the fallback: the last `--set output.dir=V` of ARGS,
# else `dir:` of the config's top-level `output:` section (block style), else runs/default.
recvae_run_dir_from_args() {
  local config=$1 dir="" i
  shift
  local args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
      --set) [[ "${args[$((i + 1))]:-}" == output.dir=* ]] && dir=${args[$((i + 1))]#output.dir=} ;;
      --set=output.dir=*) dir=${args[$i]#--set=output.dir=} ;;
    esac
  done
  if [[ -z "$dir" && -f "$config" ]]; then
    dir=$(awk '
      /^[^[:space:]#][^:]*:/ { section = $1; sub(/:.*/, "", section); next }
      section == "output" && /^[[:space:]]+dir[[:space:]]*:/ {
        v = $0; sub(/^[^:]*:[[:space:]]*/, "", v); sub(/[[:space:]]+#.*/, "", v)
        gsub(/^["\047]|["\047][[:space:]]*$/, "", v); print v; exit
      }' "$config")
  fi
  printf '%s\n' "${dir:-runs/default}"
}

# recvae_plot_run RUN_DIR LAUNCH_DIR: draws RUN_DIR/curves.png with LAUNCH_DIR/analysis/plot_run.py
# when a Python with matplotlib is found, otherwise prints one line saying how. Always status 0.
recvae_plot_run() {
  local run_dir=$1 launch_dir=$2 py rc plot_py
  if [[ "${RECVAE_PLOT:-1}" == "0" ]]; then
    return 0
  fi
  if [[ -z "$run_dir" || ! -f "$run_dir/metrics.jsonl" ]]; then
    echo "plots: no metrics.jsonl in '${run_dir:-?}'; no learning curves drawn" >&2
    return 0
  fi
  plot_py=$launch_dir/analysis/plot_run.py
  if [[ ! -f "$plot_py" ]]; then
    echo "plots: $plot_py not found; no learning curves drawn" >&2
    return 0
  fi
  if ! py=$(recvae_python_plot 2>/dev/null); then
    echo "plots: no learning curves (no Python with matplotlib): $(recvae_python_hint);" \
      "then: python3 $plot_py $run_dir" >&2
    return 0
  fi
  rc=0
  "$py" "$plot_py" "$run_dir" || rc=$?
  if ((rc != 0)); then
    echo "plots: plot_run.py exited with status $rc; the run itself succeeded" >&2
  fi
  return 0
}

# SIGINT handler of recvae_run_and_plot (uses its local variables child, interrupts, signalled).
# shellcheck disable=SC2317  # invoked by a trap
_recvae_on_int() {
  signalled=INT
  interrupts=$((interrupts + 1))
  if ((interrupts == 1)); then
    echo "interrupted: asking the trainer to checkpoint and stop (SIGTERM; Ctrl-C again kills it)" >&2
    kill -s TERM "$child" 2>/dev/null || true
  else
    kill -s KILL "$child" 2>/dev/null || true
  fi
}

# recvae_run_and_plot LAUNCH_DIR CONFIG CMD...: runs CMD (the trainer, or mpirun + trainer) as a
# child with its stderr copied as above, forwards SIGTERM, SIGUSR1 and SIGUSR2 to it (the trainer
# checkpoints and exits 3; mpirun passes them on to the ranks), turns Ctrl-C (SIGINT, which a
# background child of a script ignores) into SIGTERM, and a second Ctrl-C into SIGKILL. After a
# successful run it draws the learning curves. Returns CMD's exit status.
recvae_run_and_plot() {
  local launch_dir=$1 config=$2
  shift 2
  local -a cmd=("$@")
  local child status again run_dir interrupts=0 signalled=""
  local captured=0
  if recvae_capture_start; then captured=1; fi

  if ((captured)); then
    "${cmd[@]}" 2>&"$RECVAE_CAPTURE_FD" &
  else
    "${cmd[@]}" &
  fi
  child=$!
  # shellcheck disable=SC2064  # $child is meant to be expanded now
  trap "signalled=TERM; kill -s TERM $child 2>/dev/null || true" TERM
  # shellcheck disable=SC2064
  trap "signalled=USR1; kill -s USR1 $child 2>/dev/null || true" USR1
  # shellcheck disable=SC2064
  trap "signalled=USR2; kill -s USR2 $child 2>/dev/null || true" USR2
  trap _recvae_on_int INT

  # `wait` returns early (> 128) when a trapped signal arrives: wait again while the child lives;
  # when it has just ended a second `wait` returns its status (127 when bash no longer holds it).
  while true; do
    status=0
    wait "$child" || status=$?
    if ((status > 128)) && [[ -n "$signalled" ]]; then
      if kill -0 "$child" 2>/dev/null; then
        continue
      fi
      again=0
      wait "$child" 2>/dev/null || again=$?
      ((again != 127)) && status=$again
    fi
    break
  done
  trap - TERM USR1 USR2 INT

  if ((captured)); then recvae_capture_stop; fi
  if ((status == 0)); then
    run_dir=""
    if ((captured)); then run_dir=$(recvae_run_dir_from_log "$RECVAE_CAPTURE_FILE") || run_dir=""; fi
    if [[ -z "$run_dir" ]]; then
      run_dir=$(recvae_run_dir_from_args "$config" "${cmd[@]}")
    fi
    recvae_plot_run "$run_dir" "$launch_dir"
  fi
  if ((captured)); then recvae_capture_cleanup; fi
  return "$status"
}
