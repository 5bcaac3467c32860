#!/usr/bin/env bash
# Installs the dependencies (launch/install_deps.sh) and builds the project into build/.
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release), JOBS (default nproc),
# CMAKE_ARGS (extra configure arguments, e.g. -DCMAKE_PREFIX_PATH=... for a CUDA libtorch).
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/install_deps.sh
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
