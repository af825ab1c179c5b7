#!/usr/bin/env bash
# Benchmark of the Neptune Streams consumer (issue 12), every figure from this one run (these
# machines are shared and noisy: compare ratios, not seconds):
#
#   - the changes of a RECORDS-record load (datagen, then `loader full` into neptune-local);
#   - baseline: fetching the same stream pages whole and throwing them away (the server's
#     floor: what reading the stream and serving it costs);
#   - `streams run` into NDJSON change files, into gzip change files, and into Redis
#     (redis-server on a free port): changes per second and peak RSS;
#   - memory stays flat: the peak RSS of a run stopped after 2 batches against the whole run.
#
# Target (issue 12): at least 100,000 changes per second into files. The script prints whether
# it is met and exits 1 when not.
#
# Usage: scripts/bench-streams.sh [RECORDS] [WORK_DIR]   (defaults: 100000, target/bench-streams)
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-100000}
work=${2:-target/bench-streams}
cargo build --release --locked -p datagen -p loader -p streams -p neptune-local --quiet
bin=target/release
rm -rf "$work" && mkdir -p "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "streams benchmark: $(nproc) cores, the changes of a $records-record load, work dir $work"
$bin/datagen --records "$records" --out "$work/data" --quiet --json >/dev/null
start=$(date +%s.%N)
$bin/loader --root "$work/data" --quiet full >/dev/null
load_s=$(python3 -c "print($(date +%s.%N) - $start)")

port=$(free_port)
$bin/neptune-local serve --data-dir "$work/data/neptune-local" --addr "127.0.0.1:$port" 2>/dev/null &
neptune=$!
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >/dev/null &
redis=$!
trap 'kill $neptune $redis 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/status" >/dev/null && break
  sleep 0.1
done
endpoint="http://127.0.0.1:$port"

# The floor: every page fetched whole, nothing done with it (only the last event id is read,
# from the body's head, to ask for the next page; the record count from its tail).
baseline=$(python3 - "$endpoint" <<'EOF'
import re, sys, time, urllib.request, urllib.error
endpoint = sys.argv[1]
query = "iteratorType=TRIM_HORIZON"
n, started = 0, time.time()
while True:
    try:
        with urllib.request.urlopen(f"{endpoint}/propertygraph/stream?{query}&limit=100000") as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            break
        raise
    commit, op = re.search(rb'"lastEventId":\{"commitNum":(\d+),"opNum":(\d+)\}', body).groups()
    n += int(re.search(rb'"totalRecords":(\d+)\}$', body).group(1))
    query = f"iteratorType=AFTER_SEQUENCE_NUMBER&commitNum={int(commit)}&opNum={int(op)}"
print(n, time.time() - started)
EOF
)

consume() { # NAME EXTRA-ARGS...: prints the JSON report; peak RSS in $work/NAME.rss
  local name=$1; shift
  /usr/bin/time -f "%M" -o "$work/$name.rss" $bin/streams run --endpoint "$endpoint" --name "$name" \
    --checkpoint-dir "$work/checkpoints" --limit 100000 --json --quiet "$@" >"$work/$name.json"
}
consume files --files "$work/changes"
consume gzip --files "$work/changes-gz" --gzip
consume redis --redis "redis://127.0.0.1:$redis_port"
consume early --files "$work/changes-early" --max-batches 2

python3 - "$work" "$baseline" "$load_s" <<'EOF'
import json, sys
work, baseline, load_s = sys.argv[1], sys.argv[2].split(), float(sys.argv[3])
base_n, base_s = int(baseline[0]), float(baseline[1])
def run(name):
    report = json.load(open(f"{work}/{name}.json"))
    rss = int(open(f"{work}/{name}.rss").read().split()[-1]) / 1024
    return report, rss
print(f"  changes in the stream: {base_n:,} (loader full took {load_s:.1f} s)")
print(f"  {'':36} {'s':>7} {'changes/s':>11} {'peak RSS MB':>12}")
print(f"  {'fetch only, pages thrown away':36} {base_s:7.2f} {base_n / base_s:11,.0f}")
rates = {}
for name, what in [("files", "streams into NDJSON files"), ("gzip", "streams into gzip NDJSON files"),
                   ("redis", "streams into the Redis cache"), ("early", "streams, first 2 batches only")]:
    report, rss = run(name)
    rate = report["records"] / report["seconds"]
    rates[name] = (rate, rss, report)
    print(f"  {what:36} {report['seconds']:7.2f} {rate:11,.0f} {rss:12.0f}")
files_rate, files_rss, files_report = rates["files"]
assert files_report["records"] == base_n, (files_report["records"], base_n)
print(f"  files / fetch-only: {files_rate / (base_n / base_s):.2f}x; "
      f"peak RSS whole run / first 2 batches: {files_rss / rates['early'][1]:.2f}x")
ok = files_rate >= 100_000
print(f"  target >= 100,000 changes/s into files: {'met' if ok else 'NOT met'}")
sys.exit(0 if ok else 1)
EOF
