#!/usr/bin/env bash
# wmf_cg_quality.sh: WMF's conjugate-gradient row solver (wmf.solver: cg) against the exact
# Cholesky solve at convergence: seconds per epoch and test NDCG@100 / Recall@20 / Recall@50 at
# the best validation epoch (docs/performance.md, "WMF: threads that scale, and a conjugate-gradient
# solver"; Note [Conjugate-gradient rows] in src/models/wmf.cpp).
#
#   bash launch/bench/wmf_cg_quality.sh [OUT_DIR] [SHAPES]   # default runs/wmf-cg, "gowalla ml20m"
#
# gowalla: configs/wmf/gowalla.yaml on data/gowalla.h5 (the reference split; configs/gowalla.yaml
# says how to import it). ml20m: the same WMF settings on `recvae_synth --preset ml-20m`. Both
# solvers run the same epochs (EPOCHS, default 10) with train.patience=PATIENCE (default 3), dim 256,
# THREADS threads (default 2). Environment: BIN_DIR (default build).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/wmf-cg}
shapes=${2:-gowalla ml20m}
bin=${BIN_DIR:-build}
epochs=${EPOCHS:-10}
patience=${PATIENCE:-3}
threads=${THREADS:-2}
mkdir -p "$out"

printf '%-8s %-9s %7s %11s %10s %10s %10s %10s\n' shape solver epochs s_per_epoch best_epoch test_ndcg recall20 recall50
for shape in $shapes; do
  case $shape in
    gowalla) data=data/gowalla.h5 ;;
    ml20m)
      data=$out/ml20m.h5
      [[ -f $data ]] || "$bin/recvae_synth" --preset ml-20m --output "$data" --quiet
      ;;
    *) echo "unknown shape '$shape'" >&2; exit 2 ;;
  esac
  if [[ ! -f $data ]]; then echo "$shape: $data not found (see configs/gowalla.yaml)" >&2; continue; fi
  for solver in cholesky cg; do
    dir=$out/$shape-$solver
    rm -rf "$dir"
    OMP_NUM_THREADS=$threads "$bin/recvae_dist" configs/wmf/gowalla.yaml --set data.path="$data" \
      --set output.dir="$dir" --set train.threads="$threads" --set wmf.solver="$solver" \
      --set train.epochs="$epochs" --set train.patience="$patience" --set output.save_model=false \
      --set eval.popularity_baseline=false --set output.progress_seconds=0 >"$dir.log" 2>&1 ||
      { echo "$shape $solver failed: see $dir.log" >&2; continue; }
    /usr/bin/env python3 - "$dir" "$shape" "$solver" <<'PY'
import json, sys
d, shape, solver = sys.argv[1:]
epochs = [json.loads(l) for l in open(d + "/metrics.jsonl") if l.strip()]
fin = json.load(open(d + "/final.json"))
sec = sum(e["train_seconds"] for e in epochs) / len(epochs)
print("%-8s %-9s %7d %11.1f %10d %10.4f %10.4f %10.4f" % (shape, solver, len(epochs), sec, fin["best_epoch"],
      fin["ndcg@100"], fin["recall@20"], fin["recall@50"]))
PY
  done
done
