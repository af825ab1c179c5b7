#!/usr/bin/env bash
# Makes target/pyenv: a Python virtual environment with python/requirements.txt (pyspark for
# the Spark job and its tests, xxhash for its ids, moto's server and boto3 for the Glue tests).
# Installs again only when the requirements change. Prints the environment's bin folder.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pyenv
stamp="$venv/.requirements.sha256"
want=$(sha256sum python/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "python-env: installing python/requirements.txt into $venv (pyspark is about 320 MB)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r python/requirements.txt
  echo "$want" > "$stamp"
fi
if ! command -v java >/dev/null; then
  echo "python-env: Spark needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi
echo "$PWD/$venv/bin"
