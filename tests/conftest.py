"""Shared fixtures (the repository root, a helper to run the CLI as a real subprocess) and the `e2e` marker.

`pytest -m "not e2e"` is the fast subset a developer runs between edits (about a minute on 2 cores); CI runs
everything. End to end means: installs a package or the plugin, drives a third-party client, spawns worker
processes or torchrun, or trains through the MCP server; those modules are listed here once, so a reader finds the
split in one place, and every test marked `slow` is end to end too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

E2E_MODULES = {
    "test_client_wiring",  # the Claude Code CLI and a plugin install with only the system Python
    "test_install_paths",  # the launcher provisioning its own environment
    "test_packaging",  # builds and pip-installs the wheel
    "test_mcp_inspector",  # the MCP Inspector CLI from npm
    "test_export_torchrun",  # torchrun with two processes
    "test_distill_sandbox",  # hostile files against the real worker process
    "test_mcp_distill",  # quick distills through the MCP server and its worker
    "test_mcp_fuzz",  # schema-driven fuzzing of every tool
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark end-to-end tests (see the module docstring)."""
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in E2E_MODULES or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def run_cli():
    """Run `python -m skill ...`; returns (exit code, parsed JSON or None, stderr)."""

    def _run(*args: str, stdin: str | None = None, cwd: Path | None = None, timeout: float = 120):
        proc = subprocess.run(
            [sys.executable, "-m", "skill", *args], input=stdin, capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
        )
        try:
            data = json.loads(proc.stdout) if proc.stdout.strip() else None
        except ValueError:
            data = None
        return proc.returncode, data, proc.stderr

    return _run
