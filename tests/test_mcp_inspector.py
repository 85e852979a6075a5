"""End to end with a real third-party client: the MCP Inspector CLI (pinned, from the npm registry)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.npm_tools import INSPECTOR, install
from tests.mcp_helpers import ROOT


@pytest.fixture(scope="module")
def inspector() -> list[str]:
    return [str(install(INSPECTOR, "mcp-inspector")), "--cli", sys.executable, "-m", "mcp_server"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_inspector_lists_all_tools(inspector):
    proc = _run([*inspector, "--method", "tools/list"])
    assert proc.returncode == 0, proc.stderr
    tools = {t["name"]: t for t in json.loads(proc.stdout)["tools"]}
    expected = {"kd_route_request", "kd_recommend_method", "kd_choose_alpha", "kd_score_distillation", "kd_diagnose_failure", "kd_check_quality_gates"}
    assert expected <= set(tools)
    assert all("outputSchema" in tools[n] and tools[n]["annotations"]["readOnlyHint"] for n in expected)


def test_inspector_calls_a_tool(inspector):
    proc = _run([*inspector, "--method", "tools/call", "--tool-name", "kd_choose_alpha",
                 "--tool-arg", "deployment_environment=mobile", "--tool-arg", "application_domain=medical"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)["structuredContent"]
    assert data["alpha"] == 0.7 and data["alpha_range"] == [0.6, 0.8]
    assert data["warnings"][0]["id"] == "critical_domain_on_small_device"


def test_inspector_reports_a_bad_call(inspector):
    proc = _run([*inspector, "--method", "tools/call", "--tool-name", "kd_choose_alpha", "--tool-arg", "deployment_environment=moon"])
    assert proc.returncode == 5
    assert "deployment_environment" in proc.stdout


def test_inspector_finds_no_schema_portability_problems(inspector):
    proc = _run([*inspector, "--method", "tools/list", "--strict"])
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "error" not in proc.stderr.lower(), proc.stderr[:2000]
