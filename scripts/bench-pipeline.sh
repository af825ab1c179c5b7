#!/usr/bin/env bash
# The whole pipeline on the local default, as the README's first command runs it: `datagen`,
# then `loader full` (which transforms, then loads into neptune-local in-process), for N records
# (default 100,000). The baseline, run in the same script, is `gremlin-csv validate` of the
# graph it produced (reading and checking every record; nothing stored), so the ratio says what
# the pipeline costs beyond just reading its output once.
#
# Target (issue 5, 2-core machine): the whole pipeline for 100,000 records in at most 30 s.
# The script exits 1 when it is missed.
#
# Usage: scripts/bench-pipeline.sh [RECORDS] [WORK_DIR]   (defaults: 100000, target/bench-pipeline)
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-100000}
work=${2:-target/bench-pipeline}
rm -rf "$work"
mkdir -p "$work"
cargo build --release --locked -p datagen -p loader -p gremlin-csv --quiet

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

echo "pipeline benchmark: $(nproc) cores, release build, $records records, work dir $work"
start=$(now)
target/release/datagen --records "$records" --out "$work" --quiet >/dev/null
mid=$(now)
target/release/loader --root "$work" --quiet --json full >"$work/report.json"
end=$(now)
generate=$(elapsed "$start" "$mid")
load=$(elapsed "$mid" "$end")
total=$(elapsed "$start" "$end")

start=$(now)
target/release/gremlin-csv validate "$work/datasets/graph/initial" >/dev/null
end=$(now)
baseline=$(elapsed "$start" "$end")

python3 - "$work/report.json" "$generate" "$load" "$total" "$baseline" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
generate, load, total, baseline = map(float, sys.argv[2:6])
batch = report["batches"][0]
vertices, edges = sum(batch["vertices"].values()), sum(batch["edges"].values())
statuses = [l["status"]["status"] for l in batch["loads"]]
errors = sum(l["status"]["parsing_errors"] + l["status"]["datatype_mismatch_errors"] + l["status"]["insert_errors"] for l in batch["loads"])
graph = report["graph"]
print(f"pipeline: {total:.2f} s wall (datagen {generate:.2f} s, loader full {load:.2f} s: transform and "
      f"load of {vertices:,} vertices and {edges:,} edges); loads {statuses}, {errors} errors; "
      f"graph {graph['vertices']:,} vertices, {graph['edges']:,} edges")
print(f"baseline: gremlin-csv validate of the graph takes {baseline:.2f} s -> pipeline/baseline = {total / baseline:.2f}x")
checks = [
    ("every load LOAD_COMPLETED with zero errors, the graph equal to the manifest",
     statuses == ["LOAD_COMPLETED"] * 2 and errors == 0 and graph["vertices"] == vertices and graph["edges"] == edges),
    ("at most 30 s for the whole pipeline", total <= 30.0),
]
failed = False
for name, ok in checks:
    print(f"  {'met' if ok else 'MISSED'}: {name}")
    failed |= not ok
sys.exit(1 if failed else 0)
PY
