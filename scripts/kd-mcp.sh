#!/usr/bin/env bash
# Launch the MCP server over stdio from this folder (used by .mcp.json, mcp.json and the plugins).
# Prints nothing to stdout: stdout is the protocol.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${KD_PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$here/.venv/bin/python" ]; then py="$here/.venv/bin/python"; else py="$(command -v python3 || command -v python)"; fi
fi
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m mcp_server "$@"
