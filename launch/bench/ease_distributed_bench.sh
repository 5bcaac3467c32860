#!/usr/bin/env bash
# ease_distributed_bench.sh: EASE on the MSD shape solved on one rank (replicated) and split over
# 2 and 4 ranks (ease.solver: distributed, ScaLAPACK): per-rank peak host memory, Gram, solve and
# whole-fit seconds, validation NDCG@100 (docs/performance.md, "EASE across ranks"; Note
# [Distributed EASE] in src/models/ease.cpp).
#
#   bash launch/bench/ease_distributed_bench.sh [OUT_DIR] [RUNS]   # default runs/ease-dist, "1r 2d 4d"
#
# RUNS picks the settings: 1r (one rank, two threads, replicated), 2r (two ranks, replicated),
# 2d / 4d (two / four ranks x one thread, distributed; four ranks oversubscribe a 2-core machine).
# Environment: BIN_DIR (default build), DATA (default OUT_DIR/msd.h5, made by recvae_synth
# --preset msd), PRECISION (default float32), LAMBDA (default 200).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/ease-dist}
runs=${2:-1r 2d 4d}
bin=${BIN_DIR:-build}
precision=${PRECISION:-float32}
lambda=${LAMBDA:-200}
mkdir -p "$out"
data=${DATA:-$out/msd.h5}
[[ -f $data ]] || "$bin/recvae_synth" --preset msd --output "$data" --quiet
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

printf '%-4s %-5s %-11s %9s %9s %9s %14s %10s\n' run ranks solver gram_s solve_s fit_s peak_GB_per_rank val_ndcg
for r in $runs; do
  ranks=${r%?}
  case ${r: -1} in r) solver=replicated ;; d) solver=distributed ;; *) echo "unknown run '$r'" >&2; exit 2 ;; esac
  threads=1
  [[ $ranks == 1 ]] && threads=2
  dir=$out/$r
  rm -rf "$dir"
  mpirun -np "$ranks" --oversubscribe --bind-to none -x OMP_NUM_THREADS="$threads" "$bin/recvae_dist" \
    configs/ease/msd.yaml --set data.path="$data" --set output.dir="$dir" --set train.threads="$threads" \
    --set ease.precision="$precision" --set ease.solver="$solver" --set "ease.lambda=[$lambda]" \
    --set output.save_model=false --set eval.test=false --set eval.popularity_baseline=false \
    --set output.progress_seconds=0 >"$dir.log" 2>&1 || { echo "$r failed: see $dir.log" >&2; tail -5 "$dir.log" >&2; continue; }
  gram=$(grep -oE 'gram: .* in [0-9.]+ s' "$dir.log" | tail -1 | grep -oE '[0-9.]+ s$' | tr -d ' s')
  solve=$(grep -oE 'ease: B in [0-9.]+ s' "$dir.log" | tail -1 | grep -oE '[0-9.]+' | tail -1)
  /usr/bin/env python3 - "$dir/metrics.jsonl" "$r" "$ranks" "$solver" "$gram" "$solve" <<'PY'
import json, sys
path, run, ranks, solver, gram, solve = sys.argv[1:]
fit = [json.loads(l) for l in open(path) if l.strip()][-1]
peak = fit["peak_host_memory_gb_sum_over_ranks"] / int(ranks)
print("%-4s %-5s %-11s %9s %9s %9.1f %14.2f %10.4f" % (run, ranks, solver, gram, solve, fit["fit_seconds"], peak,
                                                      fit["validation"]["ndcg@100"]))
PY
done
