#!/usr/bin/env bash
# Upload throughput of `loader upload` against `aws s3 cp --recursive` (awscli from PyPI,
# installed into target/bench-venv on first use), both to the same local S3-compatible server
# (testkit's local-s3, s3s-fs over a folder), in the same script, on the same graph files:
# the graph of `datagen --records N` (default 100,000).
#
# Target (issue 5): loader at least 1.0x awscli's throughput. Exits 1 when it is missed.
#
# Usage: scripts/bench-upload.sh [RECORDS] [WORK_DIR]   (defaults: 100000, target/bench-upload)
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-100000}
work=${2:-target/bench-upload}
rm -rf "$work"
mkdir -p "$work/s3/bench"
cargo build --release --locked -p datagen -p transform -p loader -p testkit --quiet

venv=target/bench-venv
if [ ! -x "$venv/bin/aws" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet awscli
fi

target/release/datagen --records "$records" --out "$work/data" --quiet >/dev/null
target/release/transform --input "$work/data" --quiet >/dev/null
graph="$work/data/datasets/graph/initial"

target/release/local-s3 "$work/s3" >"$work/s3.addr" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/s3.addr" ] && break; sleep 0.1; done
endpoint=$(head -1 "$work/s3.addr")

export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=test-access-key AWS_SECRET_ACCESS_KEY=test-secret-key
export AWS_REGION=us-east-1 AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
unset AWS_PROFILE

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
bytes=$(du -cb "$graph"/vertices/* "$graph"/edges/* | tail -1 | cut -f1)

start=$(now)
"$venv/bin/aws" s3 cp --recursive --quiet "$graph" s3://bench/awscli/ --exclude '*' --include 'vertices/*' --include 'edges/*'
end=$(now)
awscli=$(elapsed "$start" "$end")

start=$(now)
target/release/loader --root "$work/data" --stage s3://bench/loader --quiet --json upload >"$work/upload.json"
end=$(now)
loader=$(elapsed "$start" "$end")

python3 - "$bytes" "$awscli" "$loader" "$work/upload.json" <<'PY'
import json, sys
size, awscli, loader = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
report = json.load(open(sys.argv[4]))
print(f"upload of {report['uploaded_files']} files, {size / 1e6:,.0f} MB:")
print(f"  aws s3 cp --recursive: {awscli:.2f} s ({size / awscli / 1e6:,.0f} MB/s)")
print(f"  loader upload:         {loader:.2f} s ({size / loader / 1e6:,.0f} MB/s)")
ratio = awscli / loader
print(f"loader throughput / awscli throughput = {ratio:.2f}x")
ok = ratio >= 1.0 and report["uploaded_files"] > 0
print(f"  {'met' if ok else 'MISSED'}: at least 1.0x awscli")
sys.exit(0 if ok else 1)
PY
