#!/usr/bin/env bash
# House rules (issue 19): ruff (format at 120 columns, the error rules, a complexity limit) and mypy on the package
# and the adapter, the recipe templates checked as the exported folder they become. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=.venv/bin/python
$py -m ruff format --check --quiet skill mcp_server
$py -m ruff check --quiet skill mcp_server
$py -m mypy
# The templates import kd_recipe and kd_vendor as top-level packages, as they do in an exported folder: type-check
# them laid out that way (kd_vendor holds the package's losses and nets, as kd_export_recipe copies them).
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
cp skill/export/templates/*.py "$folder"/
cp -r skill/export/templates/kd_recipe "$folder"/
mkdir "$folder/kd_vendor"
touch "$folder/kd_vendor/__init__.py"
for name in $($py -c "from skill.export.torchrun import VENDORED; print(*VENDORED)"); do
    cp "skill/distill/$name" "$folder/kd_vendor/"
done
(cd "$folder" && "$root/$py" -m mypy --config-file "$root/pyproject.toml" --explicit-package-bases --cache-dir "$root/.mypy_cache" \
    train.py trl_train.py trl_evidence.py trl_verify.py kd_recipe kd_vendor)
