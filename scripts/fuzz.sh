#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo fuzz, on the nightly toolchain) of what reads
# untrusted input: the transform's source reader and mapping (every dataset of
# schemas/sources.toml), gremlin-csv's reader and validator, and neptune-local's start-request
# parsing. Each target runs for SECONDS (default 600) from its committed corpus in
# fuzz/corpus/TARGET, which grows with what the run finds; a crash stops the script with exit 1
# and leaves the input under fuzz/artifacts/TARGET.
#
# The code fuzzed forbids `unsafe`, so what is looked for is panics, overflows and runaway
# memory; the targets are built without a sanitizer (--sanitizer none), which runs them several
# times faster. (`--debug-assertions` would add overflow checks at the price of a second release
# build of polars; the property tests in .ci/run run the same code with them.)
#
# Needs: a nightly toolchain (rustup toolchain install nightly) and cargo-fuzz
# (cargo +nightly install cargo-fuzz).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default: 600, every target)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(source_rows gremlin_csv load_request)
fi

cargo +nightly fuzz build --sanitizer none
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "fuzzing $target for $seconds s (corpus: $(ls "corpus/$target" | wc -l) inputs)"
  started=$(date +%s)
  # -rss_limit_mb: a run must not need more than 2 GB for one input (a few kB).
  if ! cargo +nightly fuzz run --sanitizer none "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      2> "target/fuzz-$target.log"; then
    tail -40 "target/fuzz-$target.log"
    echo "fuzzing $target found a crash: see fuzz/artifacts/$target" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' "target/fuzz-$target.log" || true
  echo "$target: no crash in $(( $(date +%s) - started )) s, corpus now $(ls "corpus/$target" | wc -l) inputs"
done
