"""Shared fixtures: the repository root and a helper to run the CLI as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
