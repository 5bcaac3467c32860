#!/usr/bin/env bash
# One command from a fresh machine to a trained model: installs what is needed, builds, makes
# the built-in synthetic data set (recvae_synth --preset tiny) and trains RecVAE on it with
# configs/quickstart.yaml. Results: runs/quickstart/{final.json,metrics.jsonl}.
# Extra arguments go to recvae_dist, e.g. --set train.epochs=5. RANKS=2 runs two MPI ranks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Only what the quickstart runs: the trainer and the data generator (the test binaries are
# built by launch/test.sh).
bash launch/build.sh recvae_dist recvae_synth
mkdir -p data
if [[ ! -f data/quickstart.h5 ]]; then
  build/recvae_synth --preset tiny --seed 1 --output data/quickstart.h5
fi
RANKS=${RANKS:-1}
if [[ "$RANKS" -gt 1 ]]; then
  exec bash launch/run_local.sh -n "$RANKS" configs/quickstart.yaml "$@"
fi
exec build/recvae_dist configs/quickstart.yaml "$@"
