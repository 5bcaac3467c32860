#!/usr/bin/env bash
# scaling_study.sh: runs one config at several world sizes and tabulates the scaling.
#
#   launch/scaling_study.sh CONFIG.yaml [--ranks "1 2 4"] [--nodes N|ranks [--link RATE[,DELAY]]]
#                           [--out DIR] [--set section.key=value ...]
#
# For every N it runs `launch/run_local.sh -n N CONFIG --set output.dir=$OUT/npN ...` (log in
# $OUT/npN.log), then writes $OUT/scaling.csv and $OUT/scaling.md and draws $OUT/scaling.png with
# launch/analysis/plot_scaling.py. A failed run is recorded as failed and the study goes on.
# With --nodes every run goes across emulated nodes (run_local.sh --nodes, launch/emulated_mpirun.sh:
# network namespaces on a bridge, TCP between nodes, each node's link shaped by --link): a fixed
# number of nodes, or `ranks` for one node per rank (N nodes for N ranks). Needs root and iproute2.
#
# Columns: ranks; seconds per epoch = mean of train_seconds + eval_seconds over the epochs after
# the first (all epochs when there is only one); training users/s = mean train_users_per_second
# over the same epochs (as the trainer reports it); speedup = seconds per epoch at N0 / at N (N0 =
# the smallest N that succeeded); efficiency = speedup / (N / N0); test NDCG@100 from final.json;
# nodes and link (last columns; empty without --nodes): the emulated nodes and link of the run.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
  cat <<'EOF'
usage: launch/scaling_study.sh CONFIG.yaml [--ranks "1 2 4"] [--nodes N|ranks [--link RATE[,DELAY]]]
                               [--out DIR] [--set section.key=value ...]

Runs CONFIG at each world size N through launch/run_local.sh (direct for N=1, mpirun for N>1)
with output.dir=DIR/npN, then writes DIR/scaling.csv, DIR/scaling.md and DIR/scaling.png
(speedup vs ranks with the ideal line, test NDCG@100 vs ranks).

  --ranks LIST          world sizes, space- or comma-separated (default: 1 2 4 ... up to the
                        number of GPUs from `nvidia-smi -L`, or of CPU cores without GPUs; the
                        maximum itself is added when it is not a power of two)
  --nodes N|ranks       run every N across emulated nodes (launch/emulated_mpirun.sh; root and
                        iproute2): N nodes for every run, or `ranks` for one node per rank
  --link RATE[,DELAY]   with --nodes: each node's link, e.g. 1gbit, 10gbit, 500mbit; a DELAY (2ms)
                        needs the kernel's netem qdisc. nodes and link are recorded in the table
  --out DIR             study directory (default runs/scaling-YYYYmmdd-HHMMSS)
  --batch-per-rank B    weak scaling: train.batch_size = B * N for each N (default: the config's
                        global batch for every N, i.e. strong scaling)
  --set K=V             config override for every run (repeatable), e.g. --set train.epochs=3
  --table-only          do not run anything; rebuild the table and plot from DIR's runs
  -h, --help            this text

Environment: RECVAE_BIN, MPIRUN, MPIRUN_ARGS (see launch/run_local.sh); PYTHON (default python3)
for the table and the plot. The plot needs matplotlib (apt-get install python3-matplotlib); the
table is written without it.
EOF
}

config=""
ranks_arg=""
out=""
batch_per_rank=""
nodes_arg=""
link=""
table_only=0
sets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --ranks) [[ $# -ge 2 ]] || { echo "scaling_study.sh: --ranks needs a list" >&2; exit 2; }
      ranks_arg=$2; shift 2 ;;
    --ranks=*) ranks_arg=${1#--ranks=}; shift ;;
    --out|-o) [[ $# -ge 2 ]] || { echo "scaling_study.sh: --out needs a directory" >&2; exit 2; }
      out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --batch-per-rank) [[ $# -ge 2 ]] || { echo "scaling_study.sh: --batch-per-rank needs B" >&2; exit 2; }
      batch_per_rank=$2; shift 2 ;;
    --batch-per-rank=*) batch_per_rank=${1#--batch-per-rank=}; shift ;;
    --nodes) [[ $# -ge 2 ]] || { echo "scaling_study.sh: --nodes needs N or 'ranks'" >&2; exit 2; }
      nodes_arg=$2; shift 2 ;;
    --nodes=*) nodes_arg=${1#--nodes=}; shift ;;
    --link) [[ $# -ge 2 ]] || { echo "scaling_study.sh: --link needs RATE[,DELAY]" >&2; exit 2; }
      link=$2; shift 2 ;;
    --link=*) link=${1#--link=}; shift ;;
    --set) [[ $# -ge 2 ]] || { echo "scaling_study.sh: --set needs section.key=value" >&2; exit 2; }
      sets+=(--set "$2"); shift 2 ;;
    --set=*) sets+=(--set "${1#--set=}"); shift ;;
    --table-only) table_only=1; shift ;;
    -*) echo "scaling_study.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *)
      if [[ -z "$config" ]]; then config=$1; shift
      else echo "scaling_study.sh: more than one config given ('$1')" >&2; exit 2; fi ;;
  esac
done

if [[ -z "$config" ]]; then usage >&2; exit 2; fi
if [[ ! -f "$config" ]]; then echo "scaling_study.sh: config '$config' not found" >&2; exit 2; fi
for s in "${sets[@]}"; do
  if [[ "$s" == output.dir=* ]]; then
    echo "scaling_study.sh: output.dir is set per run (DIR/npN); use --out DIR instead" >&2
    exit 2
  fi
done
if [[ -n "$nodes_arg" && "$nodes_arg" != ranks ]] && ! [[ "$nodes_arg" =~ ^[1-9][0-9]*$ ]]; then
  echo "scaling_study.sh: --nodes must be a positive integer or 'ranks', got '$nodes_arg'" >&2
  exit 2
fi
if [[ -n "$link" && -z "$nodes_arg" ]]; then
  echo "scaling_study.sh: --link shapes the links of emulated nodes; give --nodes as well" >&2
  exit 2
fi
if [[ -n "$nodes_arg" && $table_only -eq 0 && $(id -u) -ne 0 ]]; then
  echo "scaling_study.sh: --nodes (emulated nodes: network namespaces, tc) needs root" >&2
  exit 2
fi
if [[ -n "$batch_per_rank" ]] && ! [[ "$batch_per_rank" =~ ^[1-9][0-9]*$ ]]; then
  echo "scaling_study.sh: --batch-per-rank must be a positive integer" >&2
  exit 2
fi

# --- world sizes ------------------------------------------------------------------------------
cores=$(nproc 2>/dev/null || echo 1)
gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
if [[ -n "$ranks_arg" ]]; then
  read -r -a ranks <<<"${ranks_arg//,/ }"
else
  max=$cores
  ((gpus > 0)) && max=$gpus
  ranks=()
  for ((n = 1; n <= max; n *= 2)); do ranks+=("$n"); done
  if [[ "${ranks[-1]}" != "$max" ]]; then ranks+=("$max"); fi
fi
for n in "${ranks[@]}"; do
  if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
    echo "scaling_study.sh: bad rank count '$n' in --ranks" >&2
    exit 2
  fi
done
# Sort and deduplicate.
mapfile -t ranks < <(printf '%s\n' "${ranks[@]}" | sort -n | uniq)

out=${out:-runs/scaling-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "scaling_study.sh: '$python' not found (needed for the table); set PYTHON" >&2
  exit 2
fi

emulated=""
if [[ -n "$nodes_arg" ]]; then
  emulated=", emulated nodes: ${nodes_arg/#ranks/one per rank}${link:+, link $link}"
fi
echo "scaling_study: config $config, ranks ${ranks[*]}, ${gpus} GPU(s), ${cores} core(s), out $out$emulated"

# --- runs -------------------------------------------------------------------------------------
if [[ $table_only -eq 0 ]]; then
  cp "$config" "$out/study_config.yaml"
  {
    echo "config=$config"
    echo "ranks=${ranks[*]}"
    echo "batch_per_rank=$batch_per_rank"
    echo "sets=${sets[*]}"
    echo "nodes=$nodes_arg link=$link"
    echo "host=$(hostname) cores=$cores gpus=$gpus date=$(date -Iseconds)"
  } >"$out/study.txt"
  for n in "${ranks[@]}"; do
    run_sets=("${sets[@]}")
    if [[ -n "$batch_per_rank" ]]; then
      run_sets+=(--set "train.batch_size=$((batch_per_rank * n))")
    fi
    run_sets+=(--set "output.dir=$out/np$n")
    rm -f "$out/np$n/final.json" "$out/np$n/metrics.jsonl"
    # The emulated nodes and link of this run (read back by the table, also with --table-only).
    node_args=()
    run_nodes=""
    if [[ -n "$nodes_arg" ]]; then
      run_nodes=$nodes_arg
      [[ "$nodes_arg" == ranks ]] && run_nodes=$n
      node_args=(--nodes "$run_nodes")
      if [[ -n "$link" ]]; then node_args+=(--link "$link"); fi
    fi
    printf 'nodes=%s\nlink=%s\n' "$run_nodes" "$link" >"$out/np$n.emulated"
    echo "scaling_study: N=$n -> $out/np$n (log $out/np$n.log)${run_nodes:+ on $run_nodes emulated node(s)}"
    start=$(date +%s)
    set +e
    "$script_dir/run_local.sh" -n "$n" "${node_args[@]}" "$config" "${run_sets[@]}" >"$out/np$n.log" 2>&1
    rc=$?
    set -e
    echo "$rc" >"$out/np$n.rc"
    echo "scaling_study: N=$n finished with exit status $rc in $(($(date +%s) - start)) s"
    if [[ $rc -ne 0 ]]; then
      echo "scaling_study: N=$n failed; last lines of its log:" >&2
      tail -n 5 "$out/np$n.log" >&2 || true
    fi
  done
fi

# --- table ------------------------------------------------------------------------------------
"$python" - "$out" "$config" "${ranks[@]}" <<'PY'
import csv, json, os, sys

out, config, ranks = sys.argv[1], sys.argv[2], [int(r) for r in sys.argv[3:]]


def load_run(n):
    run_dir = os.path.join(out, f"np{n}")
    row = {"ranks": n, "status": "missing"}
    rc_path = os.path.join(out, f"np{n}.rc")
    rc = open(rc_path).read().strip() if os.path.exists(rc_path) else None
    epochs = []
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        epochs.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    final = None
    final_path = os.path.join(run_dir, "final.json")
    if os.path.exists(final_path):
        with open(final_path) as f:
            final = json.load(f)
    if final is None or (rc not in (None, "0")):
        row["status"] = f"failed (exit {rc})" if rc not in (None, "0") else "failed (no final.json)"
    else:
        row["status"] = "ok"
    steady = epochs[1:] if len(epochs) > 1 else epochs
    times = [e["train_seconds"] + e.get("eval_seconds", 0.0) for e in steady
             if "train_seconds" in e]
    ups = [e["train_users_per_second"] for e in steady if "train_users_per_second" in e]
    row["epochs"] = len(epochs)
    row["seconds_per_epoch"] = sum(times) / len(times) if times else None
    row["train_users_per_second"] = sum(ups) / len(ups) if ups else None
    ws = [e.get("world_size") for e in epochs if e.get("world_size") is not None]
    row["world_size"] = (final or {}).get("world_size", ws[0] if ws else None)
    ab = [e.get("allreduce_bytes_per_step") for e in epochs
          if e.get("allreduce_bytes_per_step") is not None]
    row["allreduce_bytes_per_step"] = ab[0] if ab else None
    row["test_ndcg@100"] = (final or {}).get("ndcg@100")
    row["test_recall@20"] = (final or {}).get("recall@20")
    row["best_epoch"] = (final or {}).get("best_epoch")
    row["wall_seconds"] = (final or {}).get("seconds")
    # Emulated nodes and link (launch/emulated_mpirun.sh); empty for a run on this machine as is.
    row["nodes"] = row["link"] = ""
    emulated_path = os.path.join(out, f"np{n}.emulated")
    if os.path.exists(emulated_path):
        for line in open(emulated_path):
            key, _, value = line.strip().partition("=")
            if key in ("nodes", "link"):
                row[key] = value
    if row["status"] == "ok" and row["world_size"] not in (None, n):
        row["status"] = f"ok (world_size {row['world_size']}!)"
    return row


rows = [load_run(n) for n in ranks]
base = next((r for r in rows if r["status"].startswith("ok") and r["seconds_per_epoch"]), None)
for r in rows:
    r["speedup"] = r["efficiency"] = None
    if base and r["status"].startswith("ok") and r["seconds_per_epoch"]:
        r["speedup"] = base["seconds_per_epoch"] / r["seconds_per_epoch"]
        r["efficiency"] = r["speedup"] / (r["ranks"] / base["ranks"])

columns = ["ranks", "seconds_per_epoch", "train_users_per_second", "speedup", "efficiency",
           "test_ndcg@100", "test_recall@20", "best_epoch", "epochs", "world_size",
           "allreduce_bytes_per_step", "wall_seconds", "status", "nodes", "link"]


def fmt(v, digits):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


with open(os.path.join(out, "scaling.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(columns)
    for r in rows:
        w.writerow([fmt(r.get(c), 6) for c in columns])

md = []
md.append("# RecVAE scaling study\n")
study = os.path.join(out, "study.txt")
if os.path.exists(study):
    md.append("```")
    md.append(open(study).read().rstrip())
    md.append("```\n")
md.append(f"Config: `{config}`. Baseline N0 = {base['ranks'] if base else '-'} rank(s).\n")
header = ("| ranks | s/epoch | train users/s | speedup | efficiency | test NDCG@100 | status | "
          "nodes | link |")
md.append(header)
md.append("|---:|---:|---:|---:|---:|---:|---|---:|---|")
for r in rows:
    eff = f"{100 * r['efficiency']:.0f}%" if r["efficiency"] is not None else ""
    md.append(f"| {r['ranks']} | {fmt(r['seconds_per_epoch'], 3)} | "
              f"{fmt(r['train_users_per_second'], 0)} | {fmt(r['speedup'], 2)} | {eff} | "
              f"{fmt(r['test_ndcg@100'], 4)} | {r['status']} | {r['nodes']} | {r['link']} |")
md.append("")
md.append("s/epoch: mean of train_seconds + eval_seconds over the epochs after the first (all "
          "epochs when there is one). train users/s: mean of the trainer's "
          "train_users_per_second over the same epochs. speedup: s/epoch at N0 / at N; "
          "efficiency: speedup / (N/N0). NDCG@100: test users, best validation epoch "
          "(final.json). nodes, link: emulated nodes and their link (launch/emulated_mpirun.sh; "
          "empty: ranks on this machine as is). Columns not shown here are in scaling.csv; logs in "
          "npN.log.")
if any(r["status"].startswith("ok") for r in rows):
    md.append("")
    md.append("![scaling](scaling.png)")
with open(os.path.join(out, "scaling.md"), "w") as f:
    f.write("\n".join(md) + "\n")

print("\n".join(md[md.index(header):][:len(rows) + 2]))
print(f"wrote {os.path.join(out, 'scaling.csv')} and {os.path.join(out, 'scaling.md')}")
PY

# --- plot -------------------------------------------------------------------------------------
plot_python=""
for candidate in "$python" python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import matplotlib' 2>/dev/null; then
    plot_python=$candidate
    break
  fi
done
if [[ -z "$plot_python" ]]; then
  echo "scaling_study: matplotlib not found, skipping $out/scaling.png;" \
    "install it with: apt-get install python3-matplotlib (then rerun with --table-only --out $out)" >&2
else
  "$plot_python" "$script_dir/analysis/plot_scaling.py" "$out/scaling.csv" -o "$out/scaling.png" \
    --title "RecVAE scaling: $(basename "$config")" || echo "scaling_study: plotting failed" >&2
fi

# Exit non-zero when any run failed, so that scripts notice.
failed=0
for n in "${ranks[@]}"; do
  if [[ -f "$out/np$n.rc" && "$(cat "$out/np$n.rc")" != "0" ]]; then failed=1; fi
done
exit $failed
