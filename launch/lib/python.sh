# shellcheck shell=bash
# launch/lib/python.sh: which Python the launch scripts use for tables and plots. Sourced, not run.
#
#   source launch/lib/python.sh
#   py=$(recvae_python_plot) || echo "no Python with matplotlib"   # for PNGs
#   py=$(recvae_python_any)  || echo "no Python at all"            # for tables (stdlib only)
#
# Rule (one place for every script): $RECVAE_PYTHON when it is set (used as given, even without
# matplotlib, so that a wrong choice shows up as plot_run.py's "matplotlib is missing" instead of
# being silently replaced); otherwise the first of `python3` (PATH) and /usr/bin/python3 that can
# `import matplotlib`. The second exists because a pyenv or venv python3 first on PATH often lacks
# the Debian packages (python3-matplotlib) that launch/setup/install_deps.sh installs for
# /usr/bin/python3.

# Prints the interpreter for plots; status 1 (nothing printed) when none has matplotlib.
recvae_python_plot() {
  local candidate
  if [[ -n "${RECVAE_PYTHON:-}" ]]; then
    if command -v "$RECVAE_PYTHON" >/dev/null 2>&1; then
      command -v "$RECVAE_PYTHON"
      return 0
    fi
    echo "RECVAE_PYTHON='$RECVAE_PYTHON' is not an executable" >&2
    return 1
  fi
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import matplotlib' >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# Prints the first of $RECVAE_PYTHON, `python3` and /usr/bin/python3 that can import every module
# named (e.g. `recvae_python_with h5py numpy`); status 1 when none can.
recvae_python_with() {
  local candidate imports
  imports=$(IFS=,; echo "$*")
  for candidate in ${RECVAE_PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import $imports" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# Prints the interpreter of the sweep scripts (launch/sweep/*.py): one with PyYAML and matplotlib,
# else one with PyYAML (sweep.png is then skipped); status 1 and a message on stderr naming the
# caller ($1) when none has PyYAML.
recvae_python_for_sweeps() {
  recvae_python_with yaml matplotlib || recvae_python_with yaml || {
    echo "$1: no Python 3 with PyYAML found (apt-get install python3-yaml, or point RECVAE_PYTHON at one)" >&2
    return 1
  }
}

# Prints an interpreter for stdlib-only work (tables): the plotting one when there is one, else
# the first python3 found; status 1 when there is none.
recvae_python_any() {
  local candidate
  if recvae_python_plot 2>/dev/null; then
    return 0
  fi
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# The one line printed where a plot was skipped.
recvae_python_hint() {
  echo "install python3-matplotlib (apt-get install python3-matplotlib, or launch/setup/install_deps.sh)" \
    "or point RECVAE_PYTHON at a Python that has matplotlib"
}
