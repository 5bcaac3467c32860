#!/usr/bin/env bash
# compare.sh: trains several models on one split, several seeds each, and tabulates the results.
#
#   launch/analysis/compare.sh SPLIT.h5 [--models recvae,multvae,...] [--seeds 3] [--ranks N]
#                              [--out DIR] [--preset NAME] [--set [MODEL:]section.key=value ...]
#
# Every run is `launch/run_local.sh -n N CONFIG --set data.path=SPLIT --set train.seed=SEED
# --set output.dir=OUT/runs/MODEL-sSEED ...` (directly for N = 1, mpirun for more), its log in
# OUT/runs/MODEL-sSEED.log, its exit status in .rc and its wall time in .seconds; then
# launch/analysis/compare_table.py writes OUT/table.md, OUT/table.json and OUT/table.png.
# See --help.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
launch_dir=$(cd "$script_dir/.." && pwd)
repo_dir=$(cd "$launch_dir/.." && pwd)
# shellcheck source=launch/lib/python.sh
source "$launch_dir/lib/python.sh"

default_models=recvae,multvae,multdae,cdae,autorec,ease,slim,wmf,pmf

usage() {
  cat <<EOF
usage: launch/analysis/compare.sh SPLIT.h5 [options]

Trains each model on SPLIT.h5 (made by recvae_prep or recvae_synth) with each seed and writes
OUT/table.md (one row per model: test NDCG@100, Recall@20, Recall@50 as mean ± std over the
seeds, best of each column in bold), OUT/table.json (per model: each seed's figures, mean, std,
seconds) and OUT/table.png (grouped bars with std error bars; needs matplotlib, else skipped with
a message). Each run has its directory OUT/runs/MODEL-sSEED (with its curves.png), its log
OUT/runs/MODEL-sSEED.log.

  --models LIST     comma-separated (default: $default_models).
                    Also: ract, implicit_slim (RecVAE + ImplicitSLIM)
  --seeds S         seeds 1..S: train.seed = 1, 2, ..., S (default 3)
  --seed-list L     explicit seeds instead, comma-separated (e.g. 7,1337,2024)
  --ranks N         MPI ranks per run (default 1: the trainer runs directly; more: mpirun)
  --preset NAME     base config of each model: configs/MODEL/NAME.yaml, for recvae
                    configs/NAME.yaml (default quickstart); data.path is replaced by SPLIT
  --out DIR         output directory (default compare)
  --set K=V         config override for every run (repeatable), e.g. --set train.epochs=5
  --set MODEL:K=V   override for one model only, e.g. --set ease:ease.lambda=[100,1000]
  --bin-dir DIR     directory of recvae_dist (default: \$BIN_DIR, else build/); RECVAE_BIN wins
  --no-curves       do not draw each run's curves.png
  --table-only      run nothing; rebuild the table from OUT's run directories
  -h, --help        this text

Seeds: EASE and SLIM are deterministic, so they run once (the first seed; std 0, marked in the
table). RaCT is left out unless listed: configs/ract/NAME.yaml pre-trains its Mult-VAE actor in
the same run (ract.actor_epochs) and then trains the critic; its length is set by the ract.*_epochs
keys, so a --set train.epochs=E is not passed to it (use --set ract:ract.actor_epochs=E ...).
Keys of one model's section must be given with MODEL: (another model's section is an error).
train.threads: run_local.sh's default (cores / ranks) unless set. data.path, train.seed and
output.dir are set per run and refused in --set.

Progress: one line when a run starts and one when it ends (time, test NDCG@100 or the exit status
and the end of its log). A failed run leaves its model's row "failed" (or its seed listed as
failed); the other runs go on, the table is written, and the exit status is 1.
Environment: BIN_DIR, RECVAE_BIN, MPIRUN, MPIRUN_ARGS (launch/run_local.sh), RECVAE_PYTHON
(Python for the table and the plots; default python3 or /usr/bin/python3 with matplotlib).
Exit status: 0 every run succeeded, 1 a run failed (or no Python for the table), 2 bad arguments.
EOF
}

die() {
  echo "compare.sh: $*" >&2
  exit 2
}

split=""
models_arg=$default_models
seeds_arg=3
seed_list=""
ranks=1
preset=quickstart
out=compare
bin_dir=${BIN_DIR:-}
curves=1
table_only=0
sets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --models | --seeds | --seed-list | --ranks | --preset | --out | --set | --bin-dir)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      case "$1" in
        --models) models_arg=$2 ;;
        --seeds) seeds_arg=$2 ;;
        --seed-list) seed_list=$2 ;;
        --ranks) ranks=$2 ;;
        --preset) preset=$2 ;;
        --out) out=$2 ;;
        --set) sets+=("$2") ;;
        --bin-dir) bin_dir=$2 ;;
      esac
      shift 2 ;;
    --models=* | --seeds=* | --seed-list=* | --ranks=* | --preset=* | --out=* | --set=* | --bin-dir=*)
      value=${1#*=}
      case "$1" in
        --models=*) models_arg=$value ;;
        --seeds=*) seeds_arg=$value ;;
        --seed-list=*) seed_list=$value ;;
        --ranks=*) ranks=$value ;;
        --preset=*) preset=$value ;;
        --out=*) out=$value ;;
        --set=*) sets+=("$value") ;;
        --bin-dir=*) bin_dir=$value ;;
      esac
      shift ;;
    --no-curves) curves=0; shift ;;
    --table-only) table_only=1; shift ;;
    -*) echo "compare.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *)
      [[ -z "$split" ]] || die "more than one split given ('$split', '$1')"
      split=$1; shift ;;
  esac
done

# --- arguments ----------------------------------------------------------------------------------
[[ -n "$split" || $table_only -eq 1 ]] || { usage >&2; exit 2; }
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || die "--ranks must be a positive integer, got '$ranks'"
if [[ -n "$seed_list" ]]; then
  IFS=, read -r -a seeds <<<"$seed_list"
  [[ ${#seeds[@]} -gt 0 ]] || die "--seed-list is empty"
  for s in "${seeds[@]}"; do
    [[ "$s" =~ ^[0-9]+$ ]] || die "bad seed '$s' in --seed-list (non-negative integers)"
  done
else
  [[ "$seeds_arg" =~ ^[1-9][0-9]*$ ]] || die "--seeds must be a positive integer, got '$seeds_arg'"
  seeds=()
  for ((s = 1; s <= seeds_arg; s++)); do seeds+=("$s"); done
fi
IFS=, read -r -a models <<<"$models_arg"
[[ ${#models[@]} -gt 0 ]] || die "--models is empty"
declare -A seen_model=()
for m in "${models[@]}"; do
  [[ "$m" =~ ^[a-z_]+$ ]] || die "bad model name '$m' in --models"
  [[ -z "${seen_model[$m]:-}" ]] || die "model '$m' listed twice"
  seen_model[$m]=1
done

# Base config of a model under the preset.
config_of() {
  if [[ "$1" == recvae ]]; then
    echo "$repo_dir/configs/$preset.yaml"
  else
    echo "$repo_dir/configs/$1/$preset.yaml"
  fi
}

for kv in "${sets[@]}"; do
  [[ "$kv" == *=* ]] || die "--set needs [MODEL:]section.key=value, got '$kv'"
  key=${kv%%=*}
  if [[ "$key" == *:* ]]; then
    scope=${key%%:*}
    key=${key#*:}
    [[ -n "${seen_model[$scope]:-}" ]] || die "--set $kv: model '$scope' is not in --models"
  fi
  case "$key" in
    data.path | train.seed | output.dir)
      die "--set $kv: $key is set per run (the split argument, --seeds, --out)" ;;
  esac
done

if [[ $table_only -eq 0 ]]; then
  [[ -f "$split" ]] || die "split file '$split' not found"
  split=$(cd "$(dirname "$split")" && pwd)/$(basename "$split")
  for m in "${models[@]}"; do
    [[ -f "$(config_of "$m")" ]] ||
      die "no config for model '$m' with preset '$preset' ($(config_of "$m")); see ls configs/*/"
  done
  if [[ -z "${RECVAE_BIN:-}" ]]; then
    RECVAE_BIN=${bin_dir:-$repo_dir/build}/recvae_dist
  fi
  [[ -x "$RECVAE_BIN" ]] ||
    die "trainer '$RECVAE_BIN' not found or not executable (build it, or give --bin-dir / BIN_DIR)"
  export RECVAE_BIN
fi

mkdir -p "$out/runs"
out=$(cd "$out" && pwd)

# --- runs ---------------------------------------------------------------------------------------
if [[ $table_only -eq 0 ]]; then
  plan=()
  for m in "${models[@]}"; do
    if [[ "$m" == ease || "$m" == slim ]]; then
      plan+=("$m ${seeds[0]}")
    else
      for s in "${seeds[@]}"; do plan+=("$m $s"); done
    fi
  done
  {
    echo "split=$split"
    echo "preset=$preset"
    echo "ranks=$ranks"
    echo "models=${models[*]}"
    echo "seeds=${seeds[*]}"
    echo "sets=${sets[*]}"
    echo "host=$(hostname) cores=$(nproc 2>/dev/null || echo '?') date=$(date -Iseconds)"
    for p in "${plan[@]}"; do echo "run=$p"; done
  } >"$out/compare.txt"
  echo "compare: ${#plan[@]} run(s) of ${models[*]} on $split (preset $preset, seeds ${seeds[*]}," \
    "$ranks rank(s)); out $out"
  if [[ " ${models[*]} " == *" ract "* ]]; then
    for kv in "${sets[@]}"; do
      if [[ "$kv" == train.epochs=* ]]; then
        echo "compare: note: --set $kv is not passed to ract (its length is ract.*_epochs)"
      fi
    done
  fi

  total_start=$(date +%s)
  i=0
  for p in "${plan[@]}"; do
    i=$((i + 1))
    m=${p% *}
    s=${p#* }
    name="$m-s$s"
    run_sets=(--set "data.path=$split")
    for kv in "${sets[@]}"; do
      key=${kv%%=*}
      if [[ "$key" == *:* ]]; then
        [[ "${key%%:*}" == "$m" ]] && run_sets+=(--set "${kv#*:}")
      elif [[ "$m" == ract && "$key" == train.epochs ]]; then
        continue
      else
        run_sets+=(--set "$kv")
      fi
    done
    run_sets+=(--set "train.seed=$s" --set "output.dir=$out/runs/$name")
    log="$out/runs/$name.log"
    rm -f "$out/runs/$name.rc" "$out/runs/$name.seconds"
    echo "compare: [$i/${#plan[@]}] $(date +%H:%M:%S) $m seed $s: started (log $log)"
    start=$(date +%s.%N)
    rc=0
    RECVAE_PLOT=$curves "$launch_dir/run_local.sh" -n "$ranks" "$(config_of "$m")" "${run_sets[@]}" \
      >"$log" 2>&1 || rc=$?
    seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "$rc" >"$out/runs/$name.rc"
    echo "$seconds" >"$out/runs/$name.seconds"
    if [[ $rc -eq 0 ]]; then
      ndcg=$(sed -n 's/^best epoch .*test ndcg@100 \([0-9.]*\).*/\1/p' "$log" | tail -n 1)
      echo "compare: [$i/${#plan[@]}] $(date +%H:%M:%S) $m seed $s: done in $seconds s," \
        "test NDCG@100 ${ndcg:-?}"
    else
      echo "compare: [$i/${#plan[@]}] $(date +%H:%M:%S) $m seed $s: FAILED (exit $rc) after" \
        "$seconds s; end of $log:" >&2
      tail -n 3 "$log" | sed 's/^/    /' >&2 || true
    fi
  done
  echo "compare: all runs done in $(($(date +%s) - total_start)) s"
fi

# --- table --------------------------------------------------------------------------------------
if ! py=$(recvae_python_any); then
  echo "compare.sh: no python3 found: table not written; install python3 (launch/setup/install_deps.sh)," \
    "then run: launch/analysis/compare.sh --table-only --out $out" >&2
  exit 1
fi
rc=0
"$py" "$script_dir/compare_table.py" "$out" || rc=$?
if ((rc == 2)); then
  exit 2
fi
exit "$rc"
