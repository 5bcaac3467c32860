#!/usr/bin/env bash
# overlap_bench.sh: what dist.bucket_mb (gradient buckets sent during backward, Note [Overlapped
# gradient sync]) buys, against one collective per group after backward, on the ML-20M shape
# (RecVAE, global batch 500, one thread per rank, dist.optimizer sharded), for docs/performance.md.
#
#   bash launch/bench/overlap_bench.sh [OUT_DIR]        # default runs/overlap-bench
#
# Runs, for each dist.bucket_mb in $BUCKETS (default "0 1 4") and dist.grad_dtype in $DTYPES
# (default "fp32 bf16"): two ranks on this host (shared memory), then two emulated nodes
# (launch/emulated_mpirun.sh, needs root) over each link in $LINKS (default "10gbit 1gbit").
# The settings alternate inside each place, $ROUNDS times (default 2), so that a slow spell of
# the host hits them alike. Writes every recvae_bench --json file and OUT_DIR/summary.md (median
# encoder and decoder step, exposed comm, collectives handed over during backward).
# Environment: BIN_DIR (default build), STEPS (default 12), DATA (default: the scaling bench's
# runs/sb/ml20m.h5, generated when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/overlap-bench}
bin=${BIN_DIR:-build}
steps=${STEPS:-12}
buckets=${BUCKETS:-0 1 4}
dtypes=${DTYPES:-fp32 bf16}
links=${LINKS:-10gbit 1gbit}
rounds=${ROUNDS:-2}
data=${DATA:-runs/sb/ml20m.h5}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
log() { echo "overlap_bench: $(date +%T) $*" | tee -a "$out/log.txt"; }
# shellcheck source=launch/lib/python.sh
source launch/lib/python.sh
py=$(recvae_python_any) || { echo "overlap_bench: no python3" >&2; exit 2; }
if [[ ! -f $data ]]; then
  mkdir -p "$(dirname "$data")"
  log "generating the ML-20M-shape data set"
  "$bin/recvae_synth" --preset ml-20m --seed 1 --output "$data" >/dev/null
fi
bench=("$bin/recvae_bench" --data "$data" --steps "$steps" --no-eval --set train.threads=1 --set dist.optimizer=sharded)

places=(shm)
if [[ $(id -u) -eq 0 ]] && ip netns list >/dev/null 2>&1; then
  for link in $links; do places+=("$link"); done
else
  log "no root or no ip netns: emulated nodes skipped"
fi
for place in "${places[@]}"; do
  for round in $(seq 1 "$rounds"); do
    for dtype in $dtypes; do
      for mb in $buckets; do
        name=${place}_${dtype}_b${mb}_r${round}
        log "$name"
        args=("${bench[@]}" --set dist.grad_dtype="$dtype" --set dist.bucket_mb="$mb" --json "$out/$name.json")
        if [[ $place == shm ]]; then
          mpirun -np 2 --bind-to none -x OMP_NUM_THREADS "${args[@]}" >"$out/$name.txt"
        else
          bash launch/emulated_mpirun.sh --nodes 2 --link "$place" -n 2 -- "${args[@]}" >"$out/$name.txt"
        fi
      done
    done
  done
done

"$py" - "$out" <<'PY' | tee "$out/summary.md"
import glob, json, os, re, statistics, sys
out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, "*_r*.json"))):
    m = re.match(r"(.+)_(fp32|bf16)_b([0-9.]+)_r\d+\.json", os.path.basename(f))
    if not m:
        continue
    runs.setdefault((m.group(1), m.group(2), float(m.group(3))), []).append(json.load(open(f)))
print("| place | wire | bucket_mb | encoder step ms | its exposed comm ms | buckets sent during backward / collectives | decoder step ms | its exposed comm ms | runs |")
print("|---|---|---|---|---|---|---|---|---|")
med = statistics.median
for (place, dtype, mb), js in sorted(runs.items()):
    def b(phase, key):
        return med(j[phase + "_breakdown"][key] for j in js)
    row = [place, dtype, f"{mb:g}",
           f"{med(j['encoder_step_ms'] for j in js):.0f}", f"{1e3 * b('encoder', 'comm_seconds'):.0f}",
           f"{b('encoder', 'collectives_during_backward'):.1f} / {b('encoder', 'collectives'):.1f}",
           f"{med(j['decoder_step_ms'] for j in js):.0f}", f"{1e3 * b('decoder', 'comm_seconds'):.0f}", str(len(js))]
    print("| " + " | ".join(row) + " |")
PY
