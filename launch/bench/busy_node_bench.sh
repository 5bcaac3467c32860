#!/usr/bin/env bash
# busy_node_bench.sh: how much a rank slows down when another process keeps one of its cores busy
# (docs/performance.md, "A busy node"; Note [Busy cores] in src/train/trainer.cpp).
#
#   bash launch/bench/busy_node_bench.sh [OUT_DIR]        # default runs/busy-node
#
# On an ML-1M-shaped synthetic set (6,040 users x 3,706 items, ~165 items per user) it times one
# training epoch of RecVAE and of WMF (dim 128) and one EASE fit (the Gram and the inverse), one
# rank each, in five settings:
#   alone-1t    train.threads=1, nothing else running (the "one core to itself" reference)
#   alone-2t    train.threads=2, nothing else running
#   busy-2t     train.threads=2 beside `yes > /dev/null` (one busy core): the old default
#   busy-auto   train.threads automatic (0) beside `yes`: the new default picks the free cores
#   busy-2t-passive  train.threads=2 beside `yes`, OMP_WAIT_POLICY=passive
# and prints seconds per setting and each against alone-1t.
# Environment: BIN_DIR (default build).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/busy-node}
bin=${BIN_DIR:-build}
mkdir -p "$out"
data=$out/ml1m.h5
[[ -f $data ]] || "$bin/recvae_synth" --preset tiny --users 7240 --items 3706 --mean-items 165 --heldout-users 600 \
  --seed 1 --output "$data" --quiet

busy_pid=""
start_busy() { yes >/dev/null & busy_pid=$!; }
stop_busy() { [[ -n $busy_pid ]] && kill "$busy_pid" 2>/dev/null; wait "$busy_pid" 2>/dev/null || true; busy_pid=""; }
trap stop_busy EXIT

# run NAME MODEL THREADS [ENV...]: one epoch (one fit for EASE); prints the seconds it took.
run() {
  local name=$1 model=$2 threads=$3
  shift 3
  local dir=$out/$model-$name
  rm -rf "$dir"
  local sets=(--set data.path="$data" --set output.dir="$dir" --set train.threads="$threads" --set train.epochs=1
    --set output.save_model=false --set eval.popularity_baseline=false --set eval.test=false --set output.progress_seconds=0)
  case $model in
    recvae) sets+=(--set model.type=recvae) ;;
    wmf) sets+=(--set model.type=wmf --set wmf.dim=128) ;;
    ease) sets+=(--set model.type=ease --set ease.lambda=100) ;;
  esac
  env "$@" "$bin/recvae_dist" configs/quickstart.yaml "${sets[@]}" >"$dir.log" 2>&1
  /usr/bin/env python3 -c "
import json,sys
r=json.loads(open('$dir/metrics.jsonl').readline())
print('%.2f' % r.get('train_seconds', r.get('fit_seconds', 0)))"
}

printf '%-8s %-16s %10s %12s\n' model setting seconds 'vs alone-1t' | tee "$out/table.txt"
for model in recvae wmf ease; do
  base=$(run alone-1t "$model" 1)
  printf '%-8s %-16s %10s %12s\n' "$model" alone-1t "$base" 1.00x | tee -a "$out/table.txt"
  for setting in alone-2t busy-2t busy-auto busy-2t-passive; do
    threads=2 envs=()
    [[ $setting == busy-auto ]] && threads=0
    [[ $setting == busy-2t-passive ]] && envs=(OMP_WAIT_POLICY=passive)
    [[ $setting == busy-* ]] && start_busy
    s=$(run "$setting" "$model" "$threads" "${envs[@]}")
    stop_busy
    printf '%-8s %-16s %10s %11sx\n' "$model" "$setting" "$s" "$(python3 -c "print('%.2f' % ($s / $base))")" |
      tee -a "$out/table.txt"
  done
done
