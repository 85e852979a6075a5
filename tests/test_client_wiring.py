"""Client wiring: the project .mcp.json, the Claude Code and Cursor plugin manifests, and a real health check."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mcp_helpers import ROOT
from tests.npm_tools import install

CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.332"


def _json(path: str) -> dict:
    return json.loads((ROOT / path).read_text())


def test_manifests_agree():
    project = _json(".mcp.json")["mcpServers"]["knowledge-distillation"]
    cursor = _json("mcp.json")["mcpServers"]["knowledge-distillation"]
    assert project["args"][0].endswith("scripts/kd-mcp.sh") and cursor["args"][0].endswith("scripts/kd-mcp.sh")
    claude_plugin = _json(".claude-plugin/plugin.json")
    cursor_plugin = _json(".cursor-plugin/plugin.json")
    for manifest in (claude_plugin, cursor_plugin):
        assert manifest["name"] == "knowledge-distillation-deep"
        assert (ROOT / manifest["mcpServers"]).is_file()
    assert (ROOT / cursor_plugin["skills"]).is_file()
    assert (ROOT / "scripts" / "kd-mcp.sh").is_file()


def _project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in (".mcp.json", "scripts", "mcp_server", "skill", "SKILL.md", "references"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy(source, project / name)
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.local.json").write_text(json.dumps({"enabledMcpjsonServers": ["knowledge-distillation"]}))
    return project


def _claude_mcp_list(claude: Path, project: Path, home: Path) -> str:
    home.mkdir(exist_ok=True)
    (home / ".claude.json").write_text(json.dumps({"projects": {str(project): {"hasTrustDialogAccepted": True}}}))
    proc = subprocess.run([str(claude), "mcp", "list"], cwd=project, env={"HOME": str(home), "PATH": "/usr/bin:/bin", "KD_PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def claude() -> Path:
    return install(CLAUDE_CODE, "claude")


def test_claude_code_reports_the_server_connected(claude, tmp_path):
    out = _claude_mcp_list(claude, _project_copy(tmp_path), tmp_path / "home")
    assert "knowledge-distillation" in out and "Connected" in out and "Failed" not in out, out


def test_claude_code_reports_a_broken_server(claude, tmp_path):
    """The same check fails when the server cannot start, so the test above can fail."""
    project = _project_copy(tmp_path)
    # the launcher puts the project first on PYTHONPATH, so this broken copy shadows any installed one
    (project / "mcp_server" / "__main__.py").write_text("raise SystemExit('broken on purpose')\n")
    out = _claude_mcp_list(claude, project, tmp_path / "home")
    assert "Failed to connect" in out, out


def test_claude_code_validates_the_plugin(claude, tmp_path):
    """The repository installs as a Claude Code plugin that provides both the skill and the server."""
    proc = subprocess.run([str(claude), "plugin", "validate", str(ROOT)], env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Validation passed" in out, out
    assert "skills: knowledge-distillation-deep" in out and "mcpServers: knowledge-distillation" in out
