#!/usr/bin/env bash
# Benchmark of the transform on Spark (issue 11), every figure from this one run (these machines
# are shared and noisy: compare ratios, not seconds):
#
#   - the Spark job (python/idgraph_transform.py) on local[2];
#   - the reference proof of concept's logic on the same engine and data
#     (../shared/baselines/reference_poc_spark.py, which writes its own cruder graph);
#   - the Rust transform (release build, 2 threads) on the same data;
#
# for RECORDS first-party records (datagen --records; the other datasets scale with it). Job
# seconds exclude the start of the Spark session (about 3 s), as the baseline reports them; wall
# seconds include it. Then an estimate, with its arithmetic, of 100 M records on AWS Glue G.1X
# workers from the measured per-core throughput.
#
# The Spark job and the reference run ROUNDS times, alternately (default 3), and the ratio is
# taken of their median job seconds: on a shared machine one pair of runs can land in a busy and
# a quiet minute (single pairs measured 2.7x to 3.9x on the same code). Every round is printed.
#
# Target (issue 11): the Spark job at least 3x faster than the reference logic. The script
# prints whether it is met and exits 1 when it is not.
#
# Usage: scripts/bench-spark.sh [RECORDS] [WORK_DIR]   (defaults: 100000, target/bench-spark)
#        ROUNDS              runs of each side (default 3)
#        GLUE_DPU_HOUR_USD   the Glue price per DPU-hour for the estimate (default 0.44, us-east-1)
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-100000}
work=${2:-target/bench-spark}
baseline=${BASELINE:-../shared/baselines/reference_poc_spark.py}
bin_dir=$(scripts/python-env.sh)
cargo build --release --locked -p datagen -p transform --quiet
rm -rf "$work" && mkdir -p "$work"

echo "spark benchmark: $(nproc) cores, local[2], $records records, work dir $work"
target/release/datagen --records "$records" --out "$work/data" --quiet --json >"$work/datagen.json"
rows=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sum(d['rows'] for d in r['datasets']) if 'datasets' in r else '')" "$work/datagen.json" 2>/dev/null || true)
bytes=$(du -sb "$work/data/datasets/sources/initial" | cut -f1)

submit() { "$bin_dir/spark-submit" --master 'local[2]' --driver-memory 2g \
  --conf spark.ui.enabled=false --conf spark.driver.host=127.0.0.1 \
  --conf spark.driver.bindAddress=127.0.0.1 "$@"; }
now() { date +%s.%N; }

rounds=${ROUNDS:-3}
: >"$work/rounds.txt"
for round in $(seq 1 "$rounds"); do
  start=$(now)
  PYSPARK_PYTHON="$bin_dir/python" submit python/idgraph_transform.py --input "$work/data" \
    --output "$work/spark" --batch initial --sources-schema schemas/sources.toml \
    --mapping schemas/graph.toml --force true 2>"$work/spark.log" | tail -1 >"$work/spark.json"
  spark_wall=$(python3 -c "print($(now) - $start)")

  start=$(now)
  PYSPARK_PYTHON="$bin_dir/python" submit "$baseline" "$work/data/datasets/sources/initial" \
    "$work/baseline" 2>"$work/baseline.log" | grep "spark baseline" >"$work/baseline.txt"
  baseline_wall=$(python3 -c "print($(now) - $start)")
  python3 - "$work" "$spark_wall" "$baseline_wall" >>"$work/rounds.txt" <<'ROUND'
import json, re, sys
work, spark_wall, baseline_wall = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
spark = json.load(open(f"{work}/spark.json"))
base = open(f"{work}/baseline.txt").read()
print(json.dumps({"spark": spark["seconds"], "spark_wall": spark_wall, "timings": spark["timings"],
                  "vertices": spark["vertices"], "edges": spark["edges"],
                  "baseline": float(re.search(r"job_s=([0-9.]+)", base).group(1)),
                  "baseline_wall": baseline_wall,
                  "baseline_rows": int(re.search(r"rows_out=([0-9]+)", base).group(1))}))
ROUND
  tail -1 "$work/rounds.txt" | python3 -c "import json,sys; r=json.load(sys.stdin); print(f'  round $round: Spark job {r[\"spark\"]:.2f} s, reference {r[\"baseline\"]:.2f} s ({r[\"baseline\"] / r[\"spark\"]:.2f}x)')"
done

target/release/transform --input "$work/data" --output "$work/rust" --threads 2 --json --quiet \
  >"$work/rust.json"

python3 - "$work" "$records" "$bytes" "${GLUE_DPU_HOUR_USD:-0.44}" <<'EOF'
import json, statistics, sys
work, records, size, price = sys.argv[1:]
records, size, price = int(records), int(size), float(price)
rounds = [json.loads(line) for line in open(f"{work}/rounds.txt")]
spark_s = statistics.median(r["spark"] for r in rounds)
base_s = statistics.median(r["baseline"] for r in rounds)
rust = json.load(open(f"{work}/rust.json"))["batches"][0]
rows_in = sum(d["rows_read"] for d in rust["manifest"]["datasets"])
elements = rounds[-1]["vertices"] + rounds[-1]["edges"]
each = lambda key: ", ".join(f"{r[key]:.2f}" for r in rounds)
print(f"  source rows {rows_in:,} ({size / 1e6:.0f} MB); graph elements {elements:,}; {len(rounds)} rounds")
print(f"  {'':36} {'job s, median':>14}   each round")
print(f"  {'Spark job (idgraph_transform.py)':36} {spark_s:14.2f}   {each('spark')}")
print(f"  {'reference logic (same engine)':36} {base_s:14.2f}   {each('baseline')}"
      f"   ({rounds[-1]['baseline_rows']:,} rows out)")
print(f"  {'Rust transform (release, 2 threads)':36} {rust['timings']['total']:14.2f}")
print(f"  Spark job per stage (last round): {rounds[-1]['timings']}")
print("  reference / Spark job, each round: " + ", ".join(f"{r['baseline'] / r['spark']:.2f}x" for r in rounds))
speedup = base_s / spark_s
print(f"  reference / Spark job, medians: {speedup:.2f}x (target 3x: {'met' if speedup >= 3 else 'NOT met'})")
print(f"  Spark job / Rust transform: {spark_s / rust['timings']['total']:.1f}x")

# Glue estimate: the measured throughput per core, scaled to 100 M records on G.1X workers
# (4 vCPU, 1 DPU each), assuming it scales linearly with cores (the job has no step that does
# not: every stage is per chunk or per partition) plus Glue's start-up.
per_core = rows_in / (spark_s * 2)
target = 100_000_000 / records * rows_in
print(f"  Glue estimate for 100 M records ({target / 1e6:.0f} M source rows):")
print(f"    measured: {rows_in:,} rows / ({spark_s:.2f} s x 2 cores) = {per_core:,.0f} rows per core-second")
for workers in (10, 40):
    cores = workers * 4
    seconds = target / (per_core * cores) + 60
    dpu_hours = workers * seconds / 3600
    print(f"    {workers} x G.1X ({cores} vCPU): {target:,.0f} / ({per_core:,.0f} x {cores}) + 60 s start = "
          f"{seconds / 60:.1f} min; {workers} DPU x {seconds / 3600:.3f} h = {dpu_hours:.2f} DPU-h x ${price} "
          f"= ${dpu_hours * price:.2f}")
sys.exit(0 if speedup >= 3 else 1)
EOF
