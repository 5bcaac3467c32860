#!/usr/bin/env bash
# run_export_example_test.sh: the model-export example (docs/operations.md,
# launch/examples/export_example.py; h5py and NumPy only) gives the lists recvae_recommend gives,
# for every model type it covers.
#
#   bash tests/launch/run_export_example_test.sh BIN_DIR SOURCE_DIR
#
# BIN_DIR holds recvae_dist, recvae_synth and recvae_recommend. For recvae, multvae, multdae and
# ease: a short run on the tiny synthetic split, one history of five items written as a CSV,
# recvae_recommend --users on it (top 10) and the example on model.h5 with the same items: the
# same ten items in the same order and scores within 1e-4 (relative). Exit 0 pass, 1 fail, 77
# skip (no Python with h5py and NumPy).
set -uo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: bash tests/launch/run_export_example_test.sh BIN_DIR SOURCE_DIR" >&2
  exit 1
fi
BIN_DIR=$(readlink -f "$1")
SRC_DIR=$(readlink -f "$2")
say() { echo "export_example_test: $*"; }

# shellcheck source=launch/lib/python.sh
source "$SRC_DIR/launch/lib/python.sh"
if ! py=$(recvae_python_with h5py numpy); then
  say "SKIP: no Python with h5py and NumPy"
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
"$BIN_DIR/recvae_synth" --preset tiny --seed 3 --output split.h5 >/dev/null 2>&1 || { say "FAIL: recvae_synth"; exit 1; }
# Five items of the first test user, as original ids.
mapfile -t history < <("$py" -c '
import h5py
f = h5py.File("split.h5", "r")
items = [s.decode() for s in f["item_ids"][()]]
g = f["test/fold_in"]
print("\n".join(items[j] for j in g["indices"][g["indptr"][0]:g["indptr"][1]][:5]))')
[[ ${#history[@]} -ge 1 ]] || { say "FAIL: no history read from the split"; exit 1; }
{ echo "user,item"; for i in "${history[@]}"; do echo "someone,$i"; done; } > history.csv

status=0
for model in recvae multvae multdae ease; do
  config="$SRC_DIR/configs/$model/quickstart.yaml"
  [[ $model == recvae ]] && config="$SRC_DIR/configs/quickstart.yaml"
  args=(--set data.path=split.h5 --set output.dir="run-$model" --set train.threads=1)
  [[ $model != ease ]] && args+=(--set train.epochs=2)
  if ! "$BIN_DIR/recvae_dist" "$config" "${args[@]}" >"$model.log" 2>&1; then
    say "FAIL: $model: training failed"; tail -5 "$model.log"; status=1; continue
  fi
  "$BIN_DIR/recvae_recommend" "run-$model" --users history.csv --k 10 --output "$model-recs.csv" --threads 1 \
    >>"$model.log" 2>&1 || { say "FAIL: $model: recvae_recommend failed"; tail -5 "$model.log"; status=1; continue; }
  "$py" "$SRC_DIR/launch/examples/export_example.py" "run-$model/model.h5" "${history[@]}" --k 10 >"$model-example.csv" \
    2>>"$model.log" || { say "FAIL: $model: export_example.py failed"; tail -5 "$model.log"; status=1; continue; }
  if "$py" - "$model-recs.csv" "$model-example.csv" <<'PY'
import csv, sys
recs = [(r["item"], float(r["score"])) for r in csv.DictReader(open(sys.argv[1]))]
example = [(line.split(",")[0], float(line.split(",")[1])) for line in open(sys.argv[2]) if line.strip()]
assert len(recs) == 10 and len(example) == 10, (len(recs), len(example))
assert [i for i, _ in recs] == [i for i, _ in example], (recs, example)
worst = max(abs(a - b) / max(1.0, abs(a)) for (_, a), (_, b) in zip(recs, example))
assert worst < 1e-4, worst
PY
  then
    say "$model: the example's top 10 equal recvae_recommend's"
  else
    say "FAIL: $model: the example and recvae_recommend disagree"; paste -d' ' "$model-recs.csv" "$model-example.csv" | head -12
    status=1
  fi
done
[[ $status -eq 0 ]] && say PASS
exit $status
