#!/usr/bin/env bash
# The test command (the README's, and what .ci/run runs after fmt and clippy): makes the
# Python environment the Spark and Glue tests use (target/pyenv), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-env.sh >/dev/null
cargo test --workspace --locked
