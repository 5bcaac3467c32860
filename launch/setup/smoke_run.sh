#!/usr/bin/env bash
# smoke_run.sh BUILD_DIR: trains two short runs on the built-in synthetic data with the binaries
# of BUILD_DIR (one rank, then two ranks through mpirun) and checks that both finish with the
# same test NDCG@100 above the popularity baseline; then EASE and WMF the same way. Used by launch/test.sh on the build
# configuration that the full test suite does not cover. Writes only under a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: launch/setup/smoke_run.sh BUILD_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
"$build/recvae_dist" --help >/dev/null
"$build/recvae_synth" --preset tiny --seed 1 --output "$tmp/tiny.h5" >/dev/null
common=(--set "data.path=$tmp/tiny.h5" --set train.epochs=2 --set train.threads=1 --set output.save_model=false)
"$build/recvae_dist" configs/quickstart.yaml "${common[@]}" --set "output.dir=$tmp/np1"
mpirun -np 2 --bind-to none "$build/recvae_dist" configs/quickstart.yaml "${common[@]}" --set "output.dir=$tmp/np2"
python3 - "$tmp/np1/final.json" "$tmp/np2/final.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print(f"smoke_run: test ndcg@100 {a['ndcg@100']:.5f} (1 rank), {b['ndcg@100']:.5f} (2 ranks); "
      f"popularity {a['popularity']['ndcg@100']:.5f}")
assert abs(a["ndcg@100"] - b["ndcg@100"]) < 1e-3, "1-rank and 2-rank runs differ"
assert a["ndcg@100"] > a["popularity"]["ndcg@100"], "the trained model does not beat popularity"
PY
# EASE through the build's inverse (torch's routines in the cpu-only build), at 1 and 2 ranks.
ease=(--set "data.path=$tmp/tiny.h5" --set output.save_model=false )
"$build/recvae_dist" configs/ease/quickstart.yaml "${ease[@]}" --set "output.dir=$tmp/ease1"
mpirun -np 2 --bind-to none "$build/recvae_dist" configs/ease/quickstart.yaml "${ease[@]}" --set "output.dir=$tmp/ease2"
python3 - "$tmp/ease1/final.json" "$tmp/ease2/final.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print(f"smoke_run: EASE test ndcg@100 {a['ndcg@100']:.5f} (1 rank), {b['ndcg@100']:.5f} (2 ranks)")
assert abs(a["ndcg@100"] - b["ndcg@100"]) < 1e-4, "1-rank and 2-rank EASE fits differ"
assert a["ndcg@100"] > a["popularity"]["ndcg@100"], "EASE does not beat popularity"
PY
# WMF at 1 and 2 ranks: in this configuration (no LAPACK) the row solves take the batched torch
# route that GPUs take, which the test suite's build reaches only through ALS unit tests.
wmf=(--set "data.path=$tmp/tiny.h5" --set train.epochs=3 --set train.threads=1 --set output.save_model=false)
"$build/recvae_dist" configs/wmf/quickstart.yaml "${wmf[@]}" --set "output.dir=$tmp/wmf1"
mpirun -np 2 --bind-to none "$build/recvae_dist" configs/wmf/quickstart.yaml "${wmf[@]}" --set "output.dir=$tmp/wmf2"
python3 - "$tmp/wmf1" "$tmp/wmf2" <<'PY'
import json, sys
a, b = (json.load(open(d + "/final.json")) for d in sys.argv[1:3])
obj = [[json.loads(l)["model"]["objective"] for l in open(d + "/metrics.jsonl")] for d in sys.argv[1:3]]
print(f"smoke_run: WMF test ndcg@100 {a['ndcg@100']:.5f} (1 rank), {b['ndcg@100']:.5f} (2 ranks); objective {obj[0]}")
assert all(x > y for x, y in zip(obj[0], obj[0][1:])), "the ALS objective rose"
assert all(abs(x - y) <= 1e-4 * abs(x) for x, y in zip(*obj)), "1-rank and 2-rank WMF objectives differ"
assert abs(a["ndcg@100"] - b["ndcg@100"]) < 1e-3, "1-rank and 2-rank WMF fits differ"
assert a["ndcg@100"] > a["popularity"]["ndcg@100"], "WMF does not beat popularity"
PY
echo "smoke_run: $build OK"
