#!/usr/bin/env bash
# One command from a fresh machine to a tested build: installs what is needed, builds, and runs
# the whole test suite (unit tests, CLI tests, and the multi-rank tests under mpirun -np 1/2/3).
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/build.sh
# Open MPI refuses to start as root unless told; CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "${CTEST_JOBS:-2}" "$@"
