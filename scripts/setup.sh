#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the CPU build of torch 2.13.0
# (installed first, so no multi-GB CUDA build is pulled) and this project with the extras the tests use:
# distill (the runner), test, bench (mcp-server-time, the start-up reference), llm (trl, transformers).
# A later run with the same pyproject.toml and this script unchanged skips the installs (demo.sh and test.sh call
# it every time: reinstalling took minutes and printed setuptools' editable-install warning on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.kd-setup-done
WANT=$(cat pyproject.toml scripts/setup.sh | "$PY" -c "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())")
if [ -x .venv/bin/python ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
rm -f "$STAMP"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[distill,test,bench,llm]"
echo "$WANT" > "$STAMP"
