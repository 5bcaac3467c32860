#!/usr/bin/env bash
# One command from a fresh machine to a trained model: installs what is needed, builds, makes
# the built-in synthetic data set (recvae_synth --preset tiny) and trains RecVAE on it with
# configs/quickstart.yaml. Results: runs/quickstart/{final.json,metrics.jsonl,curves.png}.
# Extra arguments go to recvae_dist, e.g. --set train.epochs=5. RANKS=2 runs two MPI ranks.
# BUILD_DIR (default build) is where launch/setup/build.sh builds and where the binaries are taken
# from.
#
# Training goes through launch/run_local.sh (directly for 1 rank, mpirun for more), which draws
# the learning curves (runs/quickstart/curves.png, launch/analysis/plot_run.py) after a successful
# run when a Python with matplotlib is found, and otherwise prints one line saying how to get them.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=${BUILD_DIR:-build}
# Only what the quickstart runs: the trainer and the data generator (the test binaries are
# built by launch/test.sh).
bash launch/setup/build.sh recvae_dist recvae_synth
mkdir -p data
if [[ ! -f data/quickstart.h5 ]]; then
  "$bin_dir/recvae_synth" --preset tiny --seed 1 --output data/quickstart.h5
fi
RANKS=${RANKS:-1}
if ! [[ "$RANKS" =~ ^[1-9][0-9]*$ ]]; then
  echo "quickstart.sh: RANKS must be a positive integer, got '$RANKS'" >&2
  exit 2
fi
exec env BIN_DIR="$bin_dir" bash launch/run_local.sh -n "$RANKS" configs/quickstart.yaml "$@"
