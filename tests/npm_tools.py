"""Install pinned npm tools (from the npm registry only) into .cache/ for the end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "npm"
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
SKILLS_INSTALLER = "skills@1.3.9"
CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.332"  # the registry's latest when pinned (npm view @anthropic-ai/claude-code version)


def require_npm() -> str:
    """npm's path; in CI a missing npm fails the test instead of skipping it."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("npm is required in CI for the end-to-end client tests")
        pytest.skip("npm/npx not installed: the third-party client tests need Node.js")
    return npm


def install(package: str, binary: str) -> Path:
    """node_modules/.bin/<binary> for a pinned package, installed once per checkout."""
    npm = require_npm()
    folder = CACHE / package.replace("/", "_").replace("@", "")
    path = folder / "node_modules" / ".bin" / binary
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), package], check=True, capture_output=True, timeout=600)
    return path
