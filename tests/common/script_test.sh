# shellcheck shell=bash
# tests/common/script_test.sh: the ending every shell-driven test shares. Sourced, not run; the
# test defines `say`, $TMP (its temporary directory) and $T0 (= $SECONDS at its start).
#
#   source "$SRC_DIR/tests/common/script_test.sh"
#   cleanup() { rc=$?; ...stop what the test started...; script_test_finish "$rc"; }
#   trap cleanup EXIT
#   script_test_trap_interrupts

# Removes $TMP (KEEP_TMP=1 keeps it, for debugging), says how long the test took and exits rc.
script_test_finish() {
  local rc=$1
  if [[ "${KEEP_TMP:-0}" == "1" ]]; then
    say "kept $TMP"
  elif [[ -n "${TMP:-}" ]]; then
    rm -rf "$TMP"
  fi
  say "finished in $((SECONDS - T0)) s with status $rc"
  exit "$rc"
}

# INT, TERM and HUP fail the test (through its EXIT trap, so its cleanup runs).
script_test_trap_interrupts() {
  local sig
  for sig in INT TERM HUP; do
    # shellcheck disable=SC2064  # $sig now
    trap "say 'FAIL: interrupted by SIG$sig'; exit 1" "$sig"
  done
}
