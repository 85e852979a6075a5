"""Helpers for talking to the real server with the real MCP SDK client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def http_server(*extra: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m mcp_server --transport http` on a free loopback port: (its /mcp URL, the process) once it accepts
    connections; terminated on exit if still running."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mcp_server", "--transport", "http", "--port", str(port), *extra],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60  # a hang guard only
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "the server exited") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # it ignored SIGTERM (the failure a test may be showing): do not leave it
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()

