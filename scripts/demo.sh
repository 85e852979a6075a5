#!/usr/bin/env bash
# The main job of the README: set up, then run a realistic session end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
