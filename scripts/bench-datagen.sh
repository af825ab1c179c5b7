#!/usr/bin/env bash
# Benchmark of `datagen`, measured against a baseline run in the same script (these machines
# are shared and noisy, so the ratio is the figure to compare across runs):
#
#   - 1,000,000 records (all four datasets): wall time, rows/s, MB/s and peak RSS, next to the
#     time `dd` takes to write (and fsync) the same number of bytes to the same disk;
#   - peak RSS at 100,000 and at 1,000,000 records (memory must stay flat as records grow);
#   - 10,000 records, the whole process, median of 5 runs.
#
# Targets (issue 2, on a 2-core machine): 1M records in at most 8 s and 500 MB peak RSS,
# 10k records in at most 0.3 s. The script exits 1 when one is missed.
#
# Usage: scripts/bench-datagen.sh [WORK_DIR]     (default: target/bench-datagen)
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:-target/bench-datagen}
mkdir -p "$work"
cargo build --release --locked -p datagen --quiet
bin=target/release/datagen

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }

run_datagen() { # records out_dir report_file
  "$bin" --records "$1" --out "$2" --force --quiet --json >"$3"
}

echo "datagen benchmark: $(nproc) cores, release build, work dir $work"

# 1,000,000 records.
start=$(now)
run_datagen 1000000 "$work/1m" "$work/1m.json"
end=$(now)
wall_1m=$(elapsed "$start" "$end")
rows=$(json_field "$work/1m.json" "['rows']")
bytes=$(json_field "$work/1m.json" "['bytes']")
rss_1m=$(json_field "$work/1m.json" "['peak_rss_bytes']")

# Baseline: write the same number of bytes, then fsync, as datagen does.
mib=$(( (bytes + 1048575) / 1048576 ))
start=$(now)
dd if=/dev/zero of="$work/baseline.bin" bs=1M count="$mib" conv=fsync status=none
end=$(now)
wall_dd=$(elapsed "$start" "$end")
rm -f "$work/baseline.bin"

# Memory flatness: the same at a tenth of the size.
run_datagen 100000 "$work/100k" "$work/100k.json"
rss_100k=$(json_field "$work/100k.json" "['peak_rss_bytes']")

# 10,000 records: the whole process, median of five.
times=()
for _ in 1 2 3 4 5; do
  start=$(now)
  run_datagen 10000 "$work/10k" /dev/null
  end=$(now)
  times+=("$(elapsed "$start" "$end")")
done
wall_10k=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)

python3 - "$wall_1m" "$rows" "$bytes" "$rss_1m" "$wall_dd" "$rss_100k" "$wall_10k" <<'EOF'
import sys
wall_1m, rows, size, rss_1m, wall_dd, rss_100k, wall_10k = map(float, sys.argv[1:])
mb = size / 1e6
print(f"1,000,000 records: {wall_1m:.2f} s wall, {int(rows):,} rows, {mb:,.0f} MB"
      f" -> {1e6 / wall_1m:,.0f} records/s, {rows / wall_1m:,.0f} rows/s, {mb / wall_1m:,.0f} MB/s,"
      f" peak RSS {rss_1m / 1e6:.0f} MB")
print(f"baseline: dd writes and fsyncs the same {mb:,.0f} MB in {wall_dd:.2f} s"
      f" -> datagen takes {wall_1m / wall_dd:.2f}x the time of just writing its output")
print(f"peak RSS: {rss_100k / 1e6:.0f} MB at 100,000 records, {rss_1m / 1e6:.0f} MB at 1,000,000"
      f" ({rss_1m / rss_100k:.2f}x for 10x the records)")
print(f"10,000 records, whole process (median of 5): {wall_10k:.3f} s")
checks = [
    ("1M records <= 8 s", wall_1m <= 8.0),
    ("1M records peak RSS <= 500 MB", rss_1m <= 500e6),
    ("10k records <= 0.3 s", wall_10k <= 0.3),
]
for name, ok in checks:
    print(f"  {'ok  ' if ok else 'MISS'} {name}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
EOF
