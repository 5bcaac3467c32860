#!/usr/bin/env bash
# One command from a fresh machine to a tested build: installs what is needed, builds, and runs
# the whole test suite (unit tests, CLI tests, the multi-rank tests under mpirun -np 1/2/3, the
# Slurm template on a real single-node Slurm).
#
# Two build configurations, so that every #if branch of the code is compiled on every run:
#  1. build/ (the default configuration, what `launch/setup/build.sh` and the quickstart build): the
#     NCCL backend when a CUDA toolkit with nccl.h is found. Everything is built; all tests run.
#  2. build-cpuonly/ (-DRECVAE_WITH_NCCL=OFF: what a machine without CUDA gets; CUDA is not even
#     searched; also without LAPACK, so EASE's torch inverse is built): the libraries and
#     binaries are built, a 2-rank smoke run trains on the built-in synthetic data and EASE fits. On a machine without a CUDA toolkit configuration 1 already is
#     this one, so it is not built twice.
# Arguments go to ctest (e.g. -L core, -R Mpi). SKIP_CPUONLY=1 skips configuration 2.
set -euo pipefail
cd "$(dirname "$0")/.."

# Open MPI refuses to start as root unless told; CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

BUILD_DIR=${BUILD_DIR:-build}
echo "== test.sh: configuration 1 (default) in $BUILD_DIR"
BUILD_DIR=$BUILD_DIR bash launch/setup/build.sh
if grep -q 'RECVAE_NCCL_BUILT:INTERNAL=ON' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null && [[ "${SKIP_CPUONLY:-0}" != "1" ]]; then
  echo "== test.sh: configuration 2 (cpu-only: -DRECVAE_WITH_NCCL=OFF) in build-cpuonly"
  BUILD_DIR=build-cpuonly CMAKE_ARGS="${CMAKE_ARGS:-} -DRECVAE_WITH_NCCL=OFF -DRECVAE_WITH_LAPACK=OFF -DRECVAE_WITH_SCALAPACK=OFF -DRECVAE_BUILD_TESTS=OFF" \
    bash launch/setup/build.sh
  bash launch/setup/smoke_run.sh build-cpuonly
else
  echo "== test.sh: configuration 2 (cpu-only) not built separately: configuration 1 has no NCCL backend" \
       "(or SKIP_CPUONLY=1)"
fi

echo "== test.sh: tests (configuration 1)"
cd "$BUILD_DIR"
ctest --output-on-failure -j "${CTEST_JOBS:-2}" "$@"
