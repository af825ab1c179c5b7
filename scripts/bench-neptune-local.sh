#!/usr/bin/env bash
# Benchmark of neptune-local loading the toolkit's own output: `datagen --records N` (default
# 62,000, which transform maps to just over 1,000,000 vertices and edges), transformed, then loaded
# through the HTTP API as the loader does it (vertices, then edges depending on them).
#
# The baseline, run in the same script on the same files (these machines are shared and noisy,
# so the ratio is the figure to compare across runs), is `gremlin-csv validate`: reading and
# checking every record without storing anything.
#
# Target (issue 4, 2-core machine): at most 30 s for 1,000,000 vertices and edges. The script
# exits 1 when it is missed or when the load is not LOAD_COMPLETED with zero errors.
#
# Usage: scripts/bench-neptune-local.sh [RECORDS] [WORK_DIR]   (defaults: 62000, target/bench-neptune-local)
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-62000}
work=${2:-target/bench-neptune-local}
rm -rf "$work"
mkdir -p "$work"
cargo build --release --locked -p datagen -p transform -p gremlin-csv -p neptune-local --quiet

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

echo "neptune-local benchmark: $(nproc) cores, release build, datagen --records $records, work dir $work"
target/release/datagen --records "$records" --out "$work" --force --quiet >/dev/null
target/release/transform --input "$work" --force --quiet >/dev/null
batch="$work/datasets/graph/initial"

start=$(now)
target/release/gremlin-csv validate "$batch" >/dev/null
end=$(now)
baseline=$(elapsed "$start" "$end")

target/release/neptune-local serve --addr 127.0.0.1:0 --data-dir "$work/neptune" 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q 'http://' "$work/serve.log" && break
    sleep 0.1
done
endpoint=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)

python3 - "$endpoint" "$batch" "$baseline" <<'EOF'
import json, sys, time, urllib.request

endpoint, batch, baseline = sys.argv[1], sys.argv[2], float(sys.argv[3])

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(endpoint + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)

def start(source, dependencies):
    return call("POST", "/loader", {
        "source": source, "format": "csv", "region": "us-east-1",
        "iamRoleArn": "arn:aws:iam::000000000000:role/local", "queueRequest": "TRUE",
        "dependencies": dependencies,
    })["payload"]["loadId"]

begin = time.time()
vertices = start(f"{batch}/vertices", [])
edges = start(f"{batch}/edges", [vertices])
results = {}
for load_id in (vertices, edges):
    while True:
        overall = call("GET", f"/loader/{load_id}")["payload"]["overallStatus"]
        if overall["status"] not in ("LOAD_NOT_STARTED", "LOAD_IN_QUEUE", "LOAD_IN_PROGRESS"):
            results[load_id] = overall
            break
        time.sleep(0.05)
wall = time.time() - begin
manifest = json.load(open(f"{batch}/manifest.json"))
elements = sum(manifest["vertices"].values()) + sum(manifest["edges"].values())
records = sum(r["totalRecords"] for r in results.values())
errors = sum(r["parsingErrors"] + r["datatypeMismatchErrors"] + r["insertErrors"] for r in results.values())
statuses = [r["status"] for r in results.values()]
print(f"neptune-local: {wall:.2f} s wall to load {elements:,} vertices and edges "
      f"({records:,} records; {elements / wall:,.0f} elements/s); statuses {statuses}, {errors} errors")
print(f"baseline: gremlin-csv validate of the same files takes {baseline:.2f} s "
      f"-> load/validate = {wall / baseline:.2f}x")
checks = [
    ("every load LOAD_COMPLETED with zero errors", statuses == ["LOAD_COMPLETED"] * 2 and errors == 0),
    (f"at most 30 s for 1,000,000 elements (scaled: {30 * elements / 1e6:.1f} s for {elements:,})",
     wall <= 30 * max(elements, 1) / 1e6),
]
failed = False
for name, ok in checks:
    print(f"  {'met' if ok else 'MISSED'}: {name}")
    failed |= not ok
sys.exit(1 if failed else 0)
EOF
