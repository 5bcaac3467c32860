#!/usr/bin/env bash
# bf16_quality.sh: what dist.grad_dtype: bf16 costs in quality. RecVAE on a planted synthetic set
# (recvae_synth: Zipf popularity, planted taste groups), SEEDS seeds, RANKS ranks, sharded
# optimizer, once with fp32 and once with bf16 on the wire; prints test NDCG@100 / Recall@20 /
# Recall@50 per run, the means and the mean difference (docs/performance.md, "bf16 on the wire").
#
#   bash launch/bench/bf16_quality.sh [OUT_DIR]          # default runs/bf16-quality
#
# Environment: BIN_DIR (default build), SEEDS (default "1337 2024 7"), RANKS (default 2), EPOCHS
# (default 8), SYNTH_ARGS (default a 24,000 x 3,000 set with 3,000 + 3,000 held-out users).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/bf16-quality}
bin=${BIN_DIR:-build}
seeds=${SEEDS:-1337 2024 7}
ranks=${RANKS:-2}
epochs=${EPOCHS:-8}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
data=$out/planted.h5
if [[ ! -f $data ]]; then
  # shellcheck disable=SC2086  # word splitting of the defaults is intended
  "$bin/recvae_synth" ${SYNTH_ARGS:---preset tiny --users 24000 --items 3000 --mean-items 30 --heldout-users 3000} \
    --seed 1 --output "$data" --quiet
fi
for seed in $seeds; do
  for dtype in fp32 bf16; do
    dir=$out/${dtype}_seed$seed
    [[ -f $dir/final.json ]] && continue
    echo "bf16_quality: seed $seed, $dtype" >&2
    mpirun -np "$ranks" --bind-to none "$bin/recvae_dist" configs/quickstart.yaml --set data.path="$data" \
      --set output.dir="$dir" --set train.epochs="$epochs" --set train.seed="$seed" --set train.threads=1 \
      --set dist.optimizer=sharded --set dist.grad_dtype="$dtype" --set output.save_model=false \
      --set eval.popularity_baseline=false >"$dir.log" 2>&1
  done
done
# shellcheck source=launch/lib/python.sh
source launch/lib/python.sh
py=$(recvae_python_any)
# shellcheck disable=SC2086  # one argument per seed
"$py" - "$out" $seeds <<'EOF'
import json, sys
out, seeds = sys.argv[1], sys.argv[2:]
keys = ("ndcg@100", "recall@20", "recall@50")
rows = {}
print("| seed | wire | test NDCG@100 | Recall@20 | Recall@50 | best epoch |")
print("|---|---|---|---|---|---|")
for seed in seeds:
    for dtype in ("fp32", "bf16"):
        f = json.load(open("%s/%s_seed%s/final.json" % (out, dtype, seed)))
        t = f
        rows.setdefault(dtype, []).append([t[k] for k in keys])
        print("| %s | %s | %.4f | %.4f | %.4f | %s |" % (seed, dtype, *[t[k] for k in keys], f.get("best_epoch")))
mean = {d: [sum(r[i] for r in v) / len(v) for i in range(3)] for d, v in rows.items()}
for d in ("fp32", "bf16"):
    print("| mean | %s | %.4f | %.4f | %.4f | |" % (d, *mean[d]))
print("| bf16 - fp32 | | %+.4f | %+.4f | %+.4f | |" % tuple(mean["bf16"][i] - mean["fp32"][i] for i in range(3)))
EOF
