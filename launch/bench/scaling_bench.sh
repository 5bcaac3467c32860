#!/usr/bin/env bash
# scaling_bench.sh: the measurements behind docs/performance.md's "Scale-out" section, and the
# scaling model fitted to them (launch/analysis/scaling_model.py).
#
#   bash launch/bench/scaling_bench.sh [OUT_DIR]        # default runs/scaling-bench
#
# On the ML-20M shape (recvae_synth --preset ml-20m; RecVAE, global batch 500, one thread per
# rank, recvae_bench --steps $STEPS) it measures:
#   1. one rank at batch 500 and 250 (compute as a function of the local batch);
#   2. two ranks on this host (shared memory), dist.optimizer replicated / sharded, fp32 / bf16;
#   3. two and three emulated nodes (launch/emulated_mpirun.sh) over 10gbit and 1gbit links:
#      the collectives alone (recvae_bench --collectives) and the model (sharded fp32, sharded
#      bf16, replicated fp32);
# then fits the scaling model to 1. and the collectives of 3., checks it against every run of 3.
# (OUT_DIR/model/validation.md) and draws its predictions (OUT_DIR/model/scaling_prediction.png).
# Needs root for the emulated nodes (part 3 is skipped with a message without it).
# Environment: BIN_DIR (default build), STEPS (default 12), LINKS (default "10gbit 1gbit"),
# NODES (default "2 3").
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/scaling-bench}
bin=${BIN_DIR:-build}
steps=${STEPS:-12}
links=${LINKS:-10gbit 1gbit}
nodes_list=${NODES:-2 3}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
log() { echo "scaling_bench: $(date +%T) $*" | tee -a "$out/summary.txt"; }
# shellcheck source=launch/lib/python.sh
source launch/lib/python.sh
py=$(recvae_python_plot) || py=$(recvae_python_any) || { echo "scaling_bench: no python3" >&2; exit 2; }

data=$out/ml20m.h5
if [[ ! -f $data ]]; then
  log "generating the ML-20M-shape data set"
  "$bin/recvae_synth" --preset ml-20m --seed 1 --output "$data" >/dev/null
fi
bench=("$bin/recvae_bench" --data "$data" --steps "$steps" --set train.threads=1)

log "1 rank, batch 500 and 250"
"${bench[@]}" --json "$out/np1_b500.json" | tee "$out/np1_b500.txt"
"${bench[@]}" --no-eval --set train.batch_size=250 --json "$out/np1_b250.json" | tee "$out/np1_b250.txt"

for opt in replicated sharded; do
  for dtype in fp32 bf16; do
    [[ $opt == replicated && $dtype == bf16 ]] && continue
    log "2 ranks, shared memory, $opt $dtype"
    mpirun -np 2 --bind-to none -x OMP_NUM_THREADS "${bench[@]}" --set dist.optimizer="$opt" \
      --set dist.grad_dtype="$dtype" --json "$out/np2_shm_${opt}_${dtype}.json" | tee "$out/np2_shm_${opt}_${dtype}.txt"
  done
done

# --contention: how much 2 ranks sharing this host slow each other's compute (emulated nodes share it).
model_args=(--bench "$out/np1_b500.json" --bench "$out/np1_b250.json" --cores "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
  --contention "$out/np2_shm_sharded_fp32.json")
if [[ $(id -u) -ne 0 ]] || ! ip netns list >/dev/null 2>&1; then
  log "no root or no ip netns: emulated nodes skipped"
else
  for link in $links; do
    for n in $nodes_list; do
      log "$n emulated nodes, $link: collectives"
      bash launch/emulated_mpirun.sh --nodes "$n" --link "$link" -n "$n" -- \
        "$bin/recvae_bench" --collectives --json "$out/coll_${link}_n$n.json" | tee "$out/coll_${link}_n$n.txt"
      for run in sharded:fp32 sharded:bf16 replicated:fp32; do
        opt=${run%%:*} dtype=${run##*:}
        log "$n emulated nodes, $link: $opt $dtype"
        bash launch/emulated_mpirun.sh --nodes "$n" --link "$link" -n "$n" -- "${bench[@]}" \
          --set dist.optimizer="$opt" --set dist.grad_dtype="$dtype" --json "$out/nodes${n}_${link}_${opt}_${dtype}.json" |
          tee "$out/nodes${n}_${link}_${opt}_${dtype}.txt"
        model_args+=(--validate "$link=$out/nodes${n}_${link}_${opt}_${dtype}.json")
      done
      # The link's latency and bandwidth at this node count (the nodes share this host's cores).
      model_args+=(--link "$link=$out/coll_${link}_n$n.json")
    done
  done
fi
log "scaling model: validation on the emulated links"
"$py" launch/analysis/scaling_model.py "${model_args[@]}" --out "$out/model" | tee "$out/model.txt"

# Predictions beyond this host: 10 Gbit/s (fitted above when measured), 100 Gbit/s and an
# NVLink-class link (assumed: 12.5 GB/s at 5 us, 200 GB/s at 10 us), with this host's measured
# CPU compute, and with compute GPU_SPEEDUP (default 100, an assumption: no GPU figure has been
# measured) times faster. MSD=1 adds the MSD shape (measured at 1 rank here first).
# shellcheck disable=SC2054  # the commas belong to the values (GB/s,latency_us)
assumed=(--assume-link 100gbit=12.5,5 --assume-link nvlink=200,10)
# shellcheck disable=SC2054
tenG=(--assume-link 10gbit=1.25,30)
# The 2-node fit: the only one where each rank has a core of its own, as on real nodes.
[[ -f $out/coll_10gbit_n2.json ]] && tenG=(--link "10gbit=$out/coll_10gbit_n2.json")
shapes=(ml20m)
if [[ ${MSD:-0} == 1 ]]; then
  [[ -f $out/msd.h5 ]] || "$bin/recvae_synth" --preset msd --seed 1 --output "$out/msd.h5" >/dev/null
  log "MSD shape, 1 rank"
  "$bin/recvae_bench" --data "$out/msd.h5" --steps "$steps" --set train.threads=1 --json "$out/msd_np1.json" |
    tee "$out/msd_np1.txt"
  shapes+=(msd)
fi
for shape in "${shapes[@]}"; do
  b=$out/np1_b500.json
  [[ $shape == msd ]] && b=$out/msd_np1.json
  "$py" launch/analysis/scaling_model.py --bench "$b" "${tenG[@]}" "${assumed[@]}" \
    --out "$out/predict_${shape}_cpu" | tee "$out/predict_${shape}_cpu.txt"
  "$py" launch/analysis/scaling_model.py --bench "$b" "${tenG[@]}" "${assumed[@]}" \
    --gpu-speedup "${GPU_SPEEDUP:-100}" --out "$out/predict_${shape}_gpu" | tee "$out/predict_${shape}_gpu.txt"
done
log "done: $out"
