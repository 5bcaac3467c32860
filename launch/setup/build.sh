#!/usr/bin/env bash
# Installs the dependencies (launch/setup/install_deps.sh) and builds the project into build/.
#
#   bash launch/setup/build.sh [TARGET ...]     # no target: everything (libraries, binaries, tests)
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release), JOBS (default nproc),
# CMAKE_ARGS (extra configure arguments, e.g. -DCMAKE_PREFIX_PATH=... for a CUDA libtorch, or
# -DRECVAE_WITH_NCCL=OFF for the MPI-only build a machine without CUDA gets).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash launch/setup/install_deps.sh
BUILD_DIR=${BUILD_DIR:-build}
# nproc honours OMP_NUM_THREADS (coreutils): a shell set up for one-thread training must not build serially.
JOBS=${JOBS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${CMAKE_ARGS:-}
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
