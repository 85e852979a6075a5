#!/usr/bin/env bash
# The test command of the README: set up, check the house rules (ruff, mypy), then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lint.sh
exec .venv/bin/python -m pytest -q "$@"
