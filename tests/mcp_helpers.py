"""Helpers for talking to the real server with the real MCP SDK client."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mcp import StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]


def stdio_params(*extra: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> StdioServerParameters:
    """Spawn `python -m mcp_server` over stdio from the checkout."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return StdioServerParameters(command=sys.executable, args=["-m", "mcp_server", *extra], cwd=str(cwd or ROOT), env=full_env)


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def staging_folders(out: Path) -> list[Path]:
    """The runner's `.*.partial` staging folders under `out`, safe to call while a run creates and removes folders:
    os.walk skips a folder that vanished mid-walk, where Path.rglob raises FileNotFoundError (that race once failed a
    fresh-clone CI run)."""
    return [Path(top) / d for top, dirs, _ in os.walk(out) for d in dirs if d.startswith(".") and d.endswith(".partial")]
