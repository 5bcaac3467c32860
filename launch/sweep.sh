#!/usr/bin/env bash
# sweep.sh: hyper-parameter sweeps of recvae_dist, chosen on validation data, locally (one or K
# trials at a time) or as a Slurm job array; successive halving with --halving ETA.
#
#   launch/sweep.sh configs/sweeps/quickstart-multdae.yaml                  # locally, one at a time
#   launch/sweep.sh configs/sweeps/quickstart-multdae.yaml --parallel 2     # two at a time
#   launch/sweep.sh configs/sweeps/gowalla-multdae.yaml --slurm --sbatch-args "--time=04:00:00"
#   launch/sweep.sh configs/sweeps/gowalla-recvae.yaml --halving 3
#
# The work is done by launch/sweep/sweep.py (with space.py, results.py, report.py and the array
# script array.sbatch); this wrapper picks the Python (launch/lib/python.sh: RECVAE_PYTHON, else
# python3 or /usr/bin/python3, one with PyYAML and matplotlib first, one with PyYAML at least).
# --help lists the options; docs/operations.md#sweeps the file format and the outputs.
set -uo pipefail

launch_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=launch/lib/python.sh
source "$launch_dir/lib/python.sh"

py=$(recvae_python_for_sweeps sweep.sh) || exit 2
exec "$py" "$launch_dir/sweep/sweep.py" "$@"
