#!/usr/bin/env bash
# sweep_table.sh: a tuned comparison table with one command: one sweep per model (launch/sweep.sh),
# one after another, then DIR/table.md and table.json (each winner chosen on validation by its own
# sweep; the winners' test figures, ranked).
#
#   launch/sweep_table.sh configs/sweeps/gowalla-{ease,multdae,multvae,ract}.yaml --out runs/table
#   launch/sweep_table.sh configs/sweeps/gowalla-*.yaml --out runs/table --parallel 2
#   launch/sweep_table.sh --report --out runs/table        # only the table, from what has finished
#
# The work is done by launch/sweep/table.py (which runs launch/sweep/sweep.py for each file); this
# wrapper picks the Python as sweep.sh does. --help lists the options; docs/operations.md#tuned-tables.
set -uo pipefail

launch_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=launch/lib/python.sh
source "$launch_dir/lib/python.sh"

py=$(recvae_python_for_sweeps sweep_table.sh) || exit 2
exec "$py" "$launch_dir/sweep/table.py" "$@"
