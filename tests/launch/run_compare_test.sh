#!/usr/bin/env bash
# run_compare_test.sh: tests launch/analysis/compare.sh, launch/analysis/compare_table.py and
# launch/analysis/plot_run.py.
#
#   bash tests/launch/run_compare_test.sh BIN_DIR SOURCE_DIR
#
# BIN_DIR holds recvae_dist and recvae_synth (ctest passes the build directory). Exit status:
# 0 pass, 1 fail (the failed check is named), 77 skip (no Python with matplotlib, chosen as the
# launch scripts do: launch/lib/python.sh). About 30 s on 2 cores.
#
# What it does, in a temporary directory (removed on success; KEEP_TMP=1 keeps it):
#   1. makes the tiny synthetic split (recvae_synth --preset tiny);
#   2. launch/analysis/compare.sh SPLIT --models multdae,ease --seeds 2 --set train.epochs=2
#      --set train.threads=1: three runs (EASE is deterministic: one seed). Checked: exit 0, a
#      started and a finished progress line per run;
#   3. table.md: the header (model, NDCG@100, Recall@20, Recall@50, ...), the separator, exactly
#      two rows (Mult-DAE, EASE), every metric cell "mean ± std" with two numbers, exactly one
#      bold cell per metric column and it is the column's largest mean, EASE marked deterministic;
#   4. table.json: per model, the seeds run (multdae 1 and 2, ease 1) and mean / std of each
#      metric equal to those recomputed here from the run directories' final.json (sample std,
#      n - 1, computed by hand; 0 for one run), and table.md's cells equal to them at 4 decimals;
#   5. table.png and every run's curves.png (drawn at the end of each run) are PNG files (magic
#      bytes, IHDR of a sensible size, > 5 kB);
#   6. plot_run.py RUN_DIR -o FILE writes a valid PNG (exit 0); on a metrics.jsonl with a corrupt
#      line, an empty one and a missing one it exits 2 with a one-line message;
#   7. compare_table.py again on the same directory rewrites the same numbers; with one run's exit
#      status changed to 1 it exits 1 and EASE's row says failed while Mult-DAE's stays;
#   8. bad arguments: compare.sh without a split, with --seeds 0, with --set train.seed=3: exit 2.
set -uo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: bash tests/launch/run_compare_test.sh BIN_DIR SOURCE_DIR" >&2
  exit 1
fi
BIN_DIR=$(readlink -f "$1")
SRC_DIR=$(readlink -f "$2")
T0=$SECONDS

say() { echo "compare_test: $*"; }
fail() {
  say "FAIL: $*"
  say "files kept in $TMP"
  exit 1
}

for b in recvae_dist recvae_synth; do
  [[ -x "$BIN_DIR/$b" ]] || { say "FAIL: $BIN_DIR/$b not found or not executable"; exit 1; }
done
# shellcheck source=launch/lib/python.sh
source "$SRC_DIR/launch/lib/python.sh"
if ! PY=$(recvae_python_plot 2>/dev/null) || ! "$PY" -c 'import matplotlib' 2>/dev/null; then
  say "SKIP: no Python with matplotlib ($(recvae_python_hint))"
  exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/recvae-compare-test.XXXXXX") || { say "FAIL: mktemp"; exit 1; }
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ "${KEEP_TMP:-0}" != "1" && -n "${passed:-}" ]]; then rm -rf "$TMP"; fi
}
trap cleanup EXIT
export OMP_NUM_THREADS=1
export RECVAE_PYTHON=$PY
cd "$TMP" || fail "cd $TMP"
say "python $PY, binaries $BIN_DIR, tmp $TMP"

# --- 1. data --------------------------------------------------------------------------------------
"$BIN_DIR/recvae_synth" --preset tiny --seed 1 --output "$TMP/tiny.h5" --quiet ||
  fail "recvae_synth --preset tiny failed"

# --- 2. compare.sh ---------------------------------------------------------------------------------
OUT=$TMP/cmp
rc=0
bash "$SRC_DIR/launch/analysis/compare.sh" "$TMP/tiny.h5" --models multdae,ease --seeds 2 \
  --out "$OUT" --bin-dir "$BIN_DIR" --set train.epochs=2 --set train.threads=1 \
  >"$TMP/compare.out" 2>&1 || rc=$?
cat "$TMP/compare.out"
[[ $rc -eq 0 ]] || fail "compare.sh exited with status $rc"
started=$(grep -c '^compare: \[[0-9]/3\] .*: started' "$TMP/compare.out")
finished=$(grep -c '^compare: \[[0-9]/3\] .*: done in [0-9.]* s' "$TMP/compare.out")
[[ $started -eq 3 && $finished -eq 3 ]] ||
  fail "expected 3 'started' and 3 'done in' progress lines, got $started and $finished"
for f in table.md table.json table.png; do
  [[ -s "$OUT/$f" ]] || fail "compare.sh did not write $OUT/$f"
done

# --- 3.-5. the table, its JSON, the PNGs ------------------------------------------------------------
"$PY" - "$OUT" <<'PY' || fail "table checks (above)"
import json, math, os, re, struct, sys

out = sys.argv[1]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

metrics = ["ndcg@100", "recall@20", "recall@50"]
labels = ["NDCG@100", "Recall@20", "Recall@50"]
expected_seeds = {"multdae": [1, 2], "ease": [1]}
names = {"multdae": "Mult-DAE", "ease": "EASE"}

# Independent recomputation from the run directories.
def mean(xs):
    return sum(xs) / len(xs)
def sample_std(xs):
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
runs = {}
for name in sorted(os.listdir(os.path.join(out, "runs"))):
    m = re.fullmatch(r"(.+)-s(\d+)", name)
    if m and os.path.isdir(os.path.join(out, "runs", name)):
        with open(os.path.join(out, "runs", name, "final.json")) as f:
            runs.setdefault(m[1], {})[int(m[2])] = json.load(f)
check({k: sorted(v) for k, v in runs.items()} == expected_seeds,
      f"run directories {({k: sorted(v) for k, v in runs.items()})}, expected {expected_seeds}")
recomputed = {}
for model, by_seed in runs.items():
    recomputed[model] = {k: (mean([r[k] for r in by_seed.values()]),
                             sample_std([r[k] for r in by_seed.values()])) for k in metrics}

# table.json
with open(os.path.join(out, "table.json")) as f:
    table = json.load(f)
check(table.get("order") == ["multdae", "ease"], f"table.json order {table.get('order')}")
for model, want in recomputed.items():
    entry = table.get("models", {}).get(model)
    if entry is None:
        check(False, f"table.json has no {model}")
        continue
    check(entry.get("status") == "ok", f"table.json {model} status {entry.get('status')}")
    check(sorted(r["seed"] for r in entry["runs"]) == expected_seeds[model],
          f"table.json {model} seeds {[r['seed'] for r in entry['runs']]}")
    for r in entry["runs"]:
        for k in metrics:
            check(abs(r[k] - runs[model][r["seed"]][k]) < 1e-12,
                  f"table.json {model} seed {r['seed']} {k} {r[k]} != final.json")
    for k in metrics:
        check(abs(entry["mean"][k] - want[k][0]) < 1e-12,
              f"table.json {model} mean {k} {entry['mean'][k]} != recomputed {want[k][0]}")
        check(abs(entry["std"][k] - want[k][1]) < 1e-12,
              f"table.json {model} std {k} {entry['std'][k]} != recomputed {want[k][1]}")
    check(isinstance(entry.get("seconds"), (int, float)), f"table.json {model} has no seconds")
check(all(table["models"]["ease"]["std"][k] == 0 for k in metrics), "EASE std is not 0")

# table.md
with open(os.path.join(out, "table.md")) as f:
    lines = [l.rstrip("\n") for l in f]
rows = [l for l in lines if l.startswith("|")]
def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]
check(len(rows) == 4, f"table.md has {len(rows)} table lines, expected header, separator, 2 rows")
if len(rows) == 4:
    header = cells(rows[0])
    check(header[:4] == ["model"] + labels, f"table.md header {header}")
    check(all(re.fullmatch(r":?-+:?", c) for c in cells(rows[1])) and
          len(cells(rows[1])) == len(header), f"table.md separator {rows[1]}")
    body = [cells(r) for r in rows[2:]]
    check([b[0] for b in body] == ["Mult-DAE", "EASE"], f"table.md rows {[b[0] for b in body]}")
    check(all(len(b) == len(header) for b in body), "table.md rows of the wrong width")
    check("deterministic" in body[1][4], f"EASE runs cell '{body[1][4]}' lacks 'deterministic'")
    for col, k in enumerate(metrics, start=1):
        parsed, bold = [], []
        for b, model in zip(body, ["multdae", "ease"]):
            m = re.fullmatch(r"(\*\*)?([0-9]+\.[0-9]+) ± ([0-9]+\.[0-9]+)(\*\*)?", b[col])
            if not m or bool(m[1]) != bool(m[4]):
                check(False, f"table.md cell '{b[col]}' is not 'mean ± std'")
                continue
            mu, sd = float(m[2]), float(m[3])
            parsed.append(mu)
            if m[1]:
                bold.append(model)
            check(abs(mu - round(recomputed[model][k][0], 4)) < 1e-9 and
                  abs(sd - round(recomputed[model][k][1], 4)) < 1e-9,
                  f"table.md {model} {k} '{b[col]}' != recomputed {recomputed[model][k]}")
        check(len(bold) == 1, f"table.md column {labels[col - 1]}: {len(bold)} bold cells")
        if len(bold) == 1:
            best = max(recomputed, key=lambda mm: recomputed[mm][k][0])
            check(bold[0] == best, f"table.md column {labels[col - 1]}: bold {bold[0]}, best {best}")

# PNGs
def check_png(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        check(False, f"{path}: {e}")
        return
    ok = data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    check(ok, f"{path} is not a PNG")
    if ok:
        w, h = struct.unpack(">II", data[16:24])
        check(w >= 300 and h >= 200, f"{path}: {w}x{h} pixels")
    check(len(data) > 5000, f"{path}: only {len(data)} bytes")
check_png(os.path.join(out, "table.png"))
for model, by_seed in expected_seeds.items():
    for s in by_seed:
        check_png(os.path.join(out, "runs", f"{model}-s{s}", "curves.png"))

for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
PY
say "table.md, table.json, table.png and the runs' curves.png checked"

# --- 6. plot_run.py -------------------------------------------------------------------------------
PLOT=$SRC_DIR/launch/analysis/plot_run.py
rc=0
"$PY" "$PLOT" "$OUT/runs/multdae-s1" -o "$TMP/explicit.png" >"$TMP/plot.out" 2>&1 || rc=$?
[[ $rc -eq 0 ]] || { cat "$TMP/plot.out"; fail "plot_run.py on a run directory exited with $rc"; }
"$PY" - "$TMP/explicit.png" <<'PY' || fail "plot_run.py -o did not write a valid PNG"
import sys
data = open(sys.argv[1], "rb").read()
sys.exit(0 if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000 else 1)
PY
mkdir -p "$TMP/corrupt" "$TMP/empty" "$TMP/missing"
cp "$OUT/runs/multdae-s1/metrics.jsonl" "$TMP/corrupt/metrics.jsonl"
echo '{"epoch": 3, "validation": {"ndcg@100": 0.1' >>"$TMP/corrupt/metrics.jsonl"
: >"$TMP/empty/metrics.jsonl"
for case in corrupt empty missing; do
  rc=0
  "$PY" "$PLOT" "$TMP/$case" >"$TMP/$case.out" 2>&1 || rc=$?
  [[ $rc -eq 2 ]] || { cat "$TMP/$case.out"; fail "plot_run.py on a $case metrics.jsonl exited with $rc, expected 2"; }
  [[ $(wc -l <"$TMP/$case.out") -eq 1 ]] ||
    { cat "$TMP/$case.out"; fail "plot_run.py on a $case metrics.jsonl: not a one-line message"; }
  [[ ! -e "$TMP/$case/curves.png" ]] || fail "plot_run.py wrote a PNG for a $case metrics.jsonl"
  say "plot_run.py, $case metrics.jsonl: exit 2: $(cat "$TMP/$case.out")"
done

# --- 7. compare_table.py again, and with a failed run ---------------------------------------------
cp "$OUT/table.json" "$TMP/table.first.json"
"$PY" "$SRC_DIR/launch/analysis/compare_table.py" "$OUT" --no-png >/dev/null 2>&1 ||
  fail "compare_table.py on the finished comparison failed"
"$PY" - "$TMP/table.first.json" "$OUT/table.json" <<'PY' || fail "compare_table.py again gave other numbers"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
sys.exit(0 if all(a["models"][m]["mean"] == b["models"][m]["mean"] and
                  a["models"][m]["std"] == b["models"][m]["std"] for m in a["order"]) else 1)
PY
cp -r "$OUT" "$TMP/failed"
echo 1 >"$TMP/failed/runs/ease-s1.rc"
rc=0
"$PY" "$SRC_DIR/launch/analysis/compare_table.py" "$TMP/failed" --no-png >"$TMP/failed.out" 2>&1 || rc=$?
[[ $rc -eq 1 ]] || { cat "$TMP/failed.out"; fail "compare_table.py with a failed run exited with $rc, expected 1"; }
grep -q '^| EASE | failed | failed | failed |' "$TMP/failed/table.md" ||
  { cat "$TMP/failed/table.md"; fail "EASE's row does not say failed"; }
grep -q '^| Mult-DAE | \*\*[0-9.]* ± ' "$TMP/failed/table.md" ||
  { cat "$TMP/failed/table.md"; fail "Mult-DAE's row is not the (bold) best once EASE failed"; }
say "compare_table.py: same numbers when rerun; a failed run gives exit 1 and a 'failed' row"

# --- 8. bad arguments -----------------------------------------------------------------------------
for args in "" "$TMP/tiny.h5 --seeds 0" "$TMP/tiny.h5 --set train.seed=3"; do
  rc=0
  # shellcheck disable=SC2086  # word splitting of args is intended
  bash "$SRC_DIR/launch/analysis/compare.sh" $args --bin-dir "$BIN_DIR" --out "$TMP/bad" >/dev/null 2>&1 || rc=$?
  [[ $rc -eq 2 ]] || fail "compare.sh ${args:-(no split)} exited with $rc, expected 2"
done
bash "$SRC_DIR/launch/analysis/compare.sh" --help >/dev/null || fail "compare.sh --help failed"
"$PY" "$PLOT" --help >/dev/null || fail "plot_run.py --help failed"

passed=1
say "PASS in $((SECONDS - T0)) s"
exit 0
