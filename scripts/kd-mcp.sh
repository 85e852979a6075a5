#!/usr/bin/env bash
# Start the knowledge-distillation MCP server over stdio from this folder (used by .mcp.json, the Claude Code and
# Cursor plugins, and a skills-installer copy). stdout is the protocol: nothing here writes to it.
#
# Which Python runs the server, first match wins:
#   $KD_PYTHON                      an interpreter you chose (it must have the dependencies)
#   <this folder>/.venv             a developer checkout set up with scripts/setup.sh
#   <data>/venv-<pyproject hash>    provisioned here on the first start by scripts/provision.py (uv when on PATH,
#                                   else a venv made with the system python3), reused while pyproject.toml is unchanged;
#                                   <data> is $KD_ENV_DIR, else ${CLAUDE_PLUGIN_DATA} (plugin installs), else
#                                   ${XDG_CACHE_HOME:-~/.cache}/knowledge-distillation-deep
# `kd-mcp.sh --install-distill [DATA]` adds the optional [distill] extras (PyTorch CPU build and friends) to that
# Python; the server's answer to a distill request without them gives the exact command, DATA included.
set -u
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export KD_LAUNCHER="$root/scripts/kd-mcp.sh"  # the server names this script in its "install the extras" answer

py="${KD_PYTHON:-}"
if [ -z "$py" ] && [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"; fi
if [ -n "$py" ]; then
  if [ "${1:-}" = "--install-distill" ]; then exec "$py" "$root/scripts/provision.py" --root "$root" --into "$py" --extras distill; fi
  exec "$py" -m mcp_server "$@"
fi

data="${KD_ENV_DIR:-${CLAUDE_PLUGIN_DATA:-${XDG_CACHE_HOME:-$HOME/.cache}/knowledge-distillation-deep}}"
if [ "${1:-}" = "--install-distill" ] && [ -n "${2:-}" ]; then data="$2"; fi  # the folder the server named
export KD_ENV_DIR="$data"  # the server names it in its install command, which runs outside the client's environment
stamp="$(cksum < "$root/pyproject.toml")"
env="$data/venv-${stamp%% *}"
env_python() { if [ -e "$env/Scripts/python.exe" ]; then echo "$env/Scripts/python.exe"; else echo "$env/bin/python"; fi; }  # Windows: Scripts/
envpy="$env/bin/python"
if [ ! -e "$envpy" ]; then envpy="$(env_python)"; fi
if [ "${1:-}" != "--install-distill" ] && [ -x "$envpy" ] && [ -f "$env/.kd-ready" ]; then
  exec "$envpy" -m mcp_server "$@"  # the warm path: no work beyond this script
fi

# First start (or pyproject.toml changed): provision with whatever Python or uv this machine has.
extras=()
if [ "${1:-}" = "--install-distill" ]; then extras=(--extras distill); fi
boot="$(command -v python3 || command -v python || true)"
if [ -n "$boot" ] && ! "$boot" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2> /dev/null; then boot=""; fi  # too old
if [ -n "$boot" ]; then
  "$boot" "$root/scripts/provision.py" --root "$root" --env "$env" ${extras[@]+"${extras[@]}"} >&2 || exit 1
elif command -v uv > /dev/null; then
  uv run --no-project --quiet --python ">=3.10" -- python "$root/scripts/provision.py" --root "$root" --env "$env" ${extras[@]+"${extras[@]}"} >&2 || exit 1
else
  echo "kd-mcp: needs python3 3.10 or newer, or uv, on PATH: install one (https://docs.astral.sh/uv/ or your system's python3), then restart the server" >&2
  exit 1
fi
if [ "${1:-}" = "--install-distill" ]; then exit 0; fi
exec "$(env_python)" -m mcp_server "$@"
