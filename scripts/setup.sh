#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the CPU build of torch 2.13.0
# (installed first, so no multi-GB CUDA build is pulled) and this project with the extras the tests use:
# distill (the runner), test, bench (mcp-server-time, the start-up reference), llm (trl, transformers).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[distill,test,bench,llm]"
