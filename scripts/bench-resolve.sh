#!/usr/bin/env bash
# Benchmark of identity resolution (issue 13), every figure from this one run (these machines are
# shared and noisy: compare ratios, not seconds):
#
#   - `resolve run` on the initial batch of RECORDS first-party records (datagen --fragmentation
#     0.2; the other datasets scale with it), HTML report included: seconds and peak RSS;
#   - the same on an incremental batch of BATCH records on top of it;
#   - baselines on the same files: reading them (cat to /dev/null, the I/O floor) and the
#     transform that made them (release, 2 threads).
#
# Targets (issue 13): the initial batch in at most 5 s and 1.5 GB peak RSS; the incremental
# batch well under a second. The script prints whether they are met and exits 1 when not.
#
# Usage: scripts/bench-resolve.sh [RECORDS] [BATCH] [WORK_DIR]
#        (defaults: 1000000, 10000, target/bench-resolve)
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-1000000}
batch_records=${2:-10000}
work=${3:-target/bench-resolve}
batch=20260201_000000
cargo build --release --locked -p datagen -p transform -p resolve --quiet
rm -rf "$work" && mkdir -p "$work"
bin=target/release

echo "resolve benchmark: $(nproc) cores, $records records then a batch of $batch_records, work dir $work"
$bin/datagen --records "$records" --fragmentation 0.2 --out "$work/data" --quiet --json >/dev/null
$bin/transform --input "$work/data" --output "$work/data" --threads 2 --json --quiet >"$work/transform.json"

graph="$work/data/datasets/graph/initial"
start=$(date +%s.%N)
cat "$graph"/vertices/* "$graph"/edges/* >/dev/null
cat_s=$(python3 -c "print($(date +%s.%N) - $start)")
$bin/resolve run --root "$work/data" --json >"$work/initial.json"

$bin/datagen --incremental --records "$batch_records" --timestamp "$batch" --fragmentation 0.2 \
  --out "$work/data" --quiet --json >/dev/null
$bin/transform --input "$work/data" --output "$work/data" --batch "$batch" --threads 2 --json --quiet \
  >"$work/transform-batch.json"
$bin/resolve run --root "$work/data" --json >"$work/batch.json"

python3 - "$work" "$cat_s" <<'EOF'
import json, sys
work, cat_s = sys.argv[1], float(sys.argv[2])
transform = json.load(open(f"{work}/transform.json"))["batches"][0]
initial = json.load(open(f"{work}/initial.json"))[0]
batch = json.load(open(f"{work}/batch.json"))[0]
graph_bytes = sum(f["bytes"] for f in transform["manifest"]["files"])
t_s = transform["timings"]["total"]
mb = lambda b: b / 1e6 if b else float("nan")
print(f"  graph batch: {graph_bytes / 1e6:.0f} MB of CSV; {initial['identifiers']:,} identifiers, "
      f"{initial['people']:,} people")
print(f"  {'':38} {'s':>7} {'peak RSS MB':>12}")
print(f"  {'read the files (cat, I/O floor)':38} {cat_s:7.2f}")
print(f"  {'transform (release, 2 threads)':38} {t_s:7.2f} {mb(transform['peak_rss_bytes']):12.0f}")
print(f"  {'resolve initial (report included)':38} {initial['seconds']:7.2f} {mb(initial['peak_rss_bytes']):12.0f}")
print(f"  {'resolve incremental batch':38} {batch['seconds']:7.2f} {mb(batch['peak_rss_bytes']):12.0f}"
      f"   ({batch['new_identifiers']:,} new identifiers, {len(batch['merges'])} merges)")
print(f"  resolve / transform: {initial['seconds'] / t_s:.2f}x; resolve / cat: {initial['seconds'] / cat_s:.1f}x")
ok_initial = initial["seconds"] <= 5 and (initial["peak_rss_bytes"] or 0) <= 1.5e9
ok_batch = batch["seconds"] < 1
print(f"  target initial <= 5 s and <= 1.5 GB: {'met' if ok_initial else 'NOT met'}; "
      f"incremental < 1 s: {'met' if ok_batch else 'NOT met'}")
sys.exit(0 if ok_initial and ok_batch else 1)
EOF
