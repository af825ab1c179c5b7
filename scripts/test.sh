#!/usr/bin/env bash
# The test command (the README's, and what .ci/run runs after fmt and clippy): makes the
# Python environment the Spark and Glue tests use (target/pyenv), runs the Spark job's Python
# tests, installs redis-server and openssl when they are missing, then runs every Rust test.
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin=$(scripts/python-env.sh)
# The Spark job's fast paths against the plain code they stand in for (a few seconds).
"$python_bin/python" -m unittest discover -s python/tests
# The stream consumer's identity-cache tests start a real redis-server (Debian's package), one
# of them with TLS, whose test certificates the openssl command makes.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} (Debian packages) for the identity-cache tests" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  # The package may start a system service; the tests start their own on free ports.
  $sudo service redis-server stop >/dev/null 2>&1 || true
fi
cargo test --workspace --locked
