#!/usr/bin/env bash
# Installs the Debian packages recvae needs when they are missing. Idempotent; works as root (CI)
# or through sudo. Set RECVAE_SKIP_INSTALL=1 to skip (e.g. on machines managed otherwise).
set -euo pipefail

if [[ "${RECVAE_SKIP_INSTALL:-0}" == "1" ]]; then
  echo "install_deps: RECVAE_SKIP_INSTALL=1, skipping package installation"
  exit 0
fi

packages=(
  build-essential cmake pkg-config
  libtorch-dev            # libtorch 1.13 (CPU)
  libopenblas0-openmp     # optimised BLAS: Debian's libtorch is ~17x slower on the reference BLAS
  liblapack-dev           # EASE's in-place inverse (potrf/potri; OpenBLAS's through the alternatives)
  libopenmpi-dev openmpi-bin
  libscalapack-openmpi-dev  # EASE solved across ranks (ease.solver: distributed)
  libhdf5-dev
  libyaml-cpp-dev
  libgtest-dev
  python3 python3-numpy python3-h5py python3-matplotlib  # launch/ plots, compare tables, the export example
  python3-yaml            # launch/sweep.sh (sweep files, the winner's config)
  zlib1g-dev              # gzip-compressed raw inputs
  iproute2                # emulated nodes (launch/emulated_mpirun.sh, run_local.sh --nodes): ip netns, tc
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_deps: all packages present"
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install_deps: missing packages (${missing[*]}) and neither root nor sudo available" >&2
  exit 1
fi

echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
