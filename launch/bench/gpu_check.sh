#!/usr/bin/env bash
# The GPU session's one prepared script: build against the PyTorch install's CUDA libtorch, run
# the tests that need a GPU, run the benchmark on the three data-set shapes, and (if the shared
# Gowalla split is reachable) train on it. Everything it measures lands in $OUT (default
# gpu-out/): build.log, tests.log, bench-*.json/.txt, gowalla-final.json.
#   bash launch/bench/gpu_check.sh              # everything
#   STEPS=20 SKIP_GOWALLA=1 bash launch/bench/gpu_check.sh
#   SKIP_TESTS=1 SKIP_BENCH=1 GOWALLA_EPOCHS=0 SWEEPS="recvae multvae ract" SWEEP_SECONDS=480 \
#     bash launch/bench/gpu_check.sh              # the fair table's slowest sweeps only
# SWEEPS: after the Gowalla run, the fair table's sweeps of those models (configs/sweeps/gowalla-M.yaml,
# launch/sweep_table.sh, SWEEP_PARALLEL trials at a time on the one GPU, default 4) for at most
# SWEEP_SECONDS; their reports (not the trial directories) land in $OUT/fair/. Stopped by the time
# limit, the sweeps checkpoint and report what has finished.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
STEPS=${STEPS:-20}
log() { echo "gpu_check: $(date +%T) $*" | tee -a "$OUT/summary.txt"; }

nvidia-smi -L | tee "$OUT/gpu.txt"
TP=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
# Link the NCCL that libtorch itself loads (the pip wheel's), so one copy is in the process.
TORCH_NCCL=$(python3 - <<'PY' 2>/dev/null
import glob, os, torch
site = os.path.dirname(os.path.dirname(torch.__file__))
hits = glob.glob(os.path.join(site, "nvidia", "nccl*", "lib", "libnccl.so*"))
print(hits[0] if hits else "")
PY
)
NCCL_ARGS=()
[[ -n "$TORCH_NCCL" ]] && NCCL_ARGS=(-DNCCL_LIBRARY="$TORCH_NCCL")
log "configure + build (libtorch from $TP; NCCL ${TORCH_NCCL:-system})"
build() {
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TP" "${NCCL_ARGS[@]}" "$@" &&
    cmake --build build-gpu -j "$(nproc)"
}
if ! build > "$OUT/build.log" 2>&1; then
  log "C++17 build failed; retrying with C++20 (tail of the first log in build.log)"
  if ! build -DCMAKE_CXX_STANDARD=20 >> "$OUT/build.log" 2>&1; then
    log "BUILD FAILED (tail of build.log follows)"; tail -40 "$OUT/build.log"; exit 1
  fi
fi
B=build-gpu
ldd "$B/recvae_dist" | grep -Ei "nccl|cudart|torch_cuda" | tee -a "$OUT/summary.txt"

if [[ "${SKIP_TESTS:-0}" != "1" ]]; then
  log "tests (GPU equality tests + the whole suite)"
  "$B/tests/recvae_core_tests" --gtest_filter='DevicePath.*' > "$OUT/tests-gpu.log" 2>&1; log "device tests rc=$?"
  (cd "$B" && ctest --output-on-failure -j 8 > "../$OUT/tests.log" 2>&1); log "ctest rc=$? ($(tail -n 3 "$OUT/tests.log" | head -n 1))"
fi

[[ "${SKIP_BENCH:-0}" == "1" ]] && presets=() || presets=(ml-20m netflix msd)
for preset in "${presets[@]}"; do
  for bs in 500 4096; do
    log "bench $preset batch $bs"
    timeout 300 "$B/recvae_bench" --preset "$preset" --steps "$STEPS" --set train.batch_size=$bs \
      --json "$OUT/bench-$preset-b$bs.json" > "$OUT/bench-$preset-b$bs.txt" 2>&1
    tee -a "$OUT/summary.txt" <"$OUT/bench-$preset-b$bs.txt"
  done
done
[[ "${SKIP_BENCH:-0}" == "1" ]] || {
log "bench ml-20m, tf32"
timeout 300 "$B/recvae_bench" --preset ml-20m --steps "$STEPS" --set train.precision=tf32 \
  --json "$OUT/bench-ml-20m-tf32.json" 2>&1 | tee -a "$OUT/summary.txt"
log "bench ml-20m, NCCL backend under mpirun -np 1"
timeout 300 mpirun -np 1 "$B/recvae_bench" --preset ml-20m --steps "$STEPS" --set dist.backend=nccl \
  --json "$OUT/bench-ml-20m-nccl.json" 2>&1 | tee -a "$OUT/summary.txt"
}

if [[ "${SKIP_GOWALLA:-0}" != "1" ]]; then
  for d in ../shared/data/gowalla/reference_split shared/data/gowalla/reference_split; do
    [[ -d "$d" ]] && split_dir=$d && break
  done
  if [[ -n "${split_dir:-}" ]]; then
    tmp=$(mktemp -d); cp "$split_dir"/* "$tmp"/; gunzip -f "$tmp"/*.gz
    "$B/recvae_prep" --format liang --input "$tmp" --output "$tmp/gowalla.h5" --quiet
    if [[ "${GOWALLA_EPOCHS:-30}" != "0" ]]; then
      log "gowalla, ${GOWALLA_EPOCHS:-30} epochs"
      timeout 400 "$B/recvae_dist" configs/gowalla.yaml --set data.path="$tmp/gowalla.h5" \
        --set train.epochs="${GOWALLA_EPOCHS:-30}" --set output.dir="$tmp/run" --set output.checkpoint_every=0 \
        > "$OUT/gowalla.log" 2>&1
      cp "$tmp/run/final.json" "$OUT/gowalla-final.json" 2>/dev/null; cp "$tmp/run/metrics.jsonl" "$OUT/gowalla-metrics.jsonl" 2>/dev/null
      tail -n 2 "$OUT/gowalla.log" | tee -a "$OUT/summary.txt"
    fi
    if [[ -n "${SWEEPS:-}" ]]; then
      files=()
      for m in $SWEEPS; do files+=("configs/sweeps/gowalla-$m.yaml"); done
      log "sweeps ($SWEEPS), at most ${SWEEP_SECONDS:-480} s"
      timeout -s TERM "${SWEEP_SECONDS:-480}" bash launch/sweep_table.sh "${files[@]}" --out "$tmp/fair" \
        --parallel "${SWEEP_PARALLEL:-4}" --set data.path="$tmp/gowalla.h5" --bin "$B/recvae_dist" \
        > "$OUT/sweeps.log" 2>&1
      log "sweeps rc=$?"
      mkdir -p "$OUT/fair"
      cp "$tmp/fair/table.md" "$tmp/fair/table.json" "$OUT/fair/" 2>/dev/null
      for d in "$tmp"/fair/*/; do
        mkdir -p "$OUT/fair/$(basename "$d")"
        cp "$d"sweep.md "$d"sweep.json "$d"sweep.csv "$d"winner.yaml "$OUT/fair/$(basename "$d")/" 2>/dev/null
      done
      tee -a "$OUT/summary.txt" < "$OUT/fair/table.md"
    fi
  else
    log "gowalla split not found: skipped"
  fi
fi
log "done"
