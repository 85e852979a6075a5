"""uv, the Python MCP ecosystem's tool, on a fresh HOME with only the system Python and uv (installed from PyPI by the
[test] extra) on PATH: `uvx --from <path> kd-mcp` from a clean clone, and the plugin launcher provisioning with uv."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.install_helpers import SYSTEM_PATH, clean_clone, start_time, user_env, uv_folder
from tests.mcp_helpers import text_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def uv_bin(tmp_path) -> Path:
    return uv_folder(tmp_path / "bin")


def test_uvx_runs_the_server_from_a_clean_clone(uv_bin, tmp_path):
    clone = clean_clone(tmp_path / "knowledge-distillation-deep")
    env = user_env(tmp_path / "home", PATH=f"{uv_bin}:{SYSTEM_PATH}")
    params = StdioServerParameters(command=str(uv_bin / "uvx"), args=["--from", str(clone), "kd-mcp"], env=env, cwd=str(tmp_path))

    async def session() -> tuple[list[str], str, str, str]:
        async with Client(params) as client:
            tools = await client.list_tools()
            skill = await client.read_resource("kd://skill")
            advice = await client.call_tool("kd_choose_alpha", {"deployment_environment": "mobile", "application_domain": "general"})
            assert not advice.is_error, text_of(advice)
            refused = await client.call_tool("kd_run_quick_distill", {"epochs": 5})
            assert refused.is_error
            return [t.name for t in tools.tools], skill.contents[0].text, text_of(advice), text_of(refused)

    names, skill_md, advice, message = anyio.run(session)
    manifest = json.loads((ROOT / "mcp_server" / "tools.json").read_text())
    assert sorted(names) == sorted(entry["name"] for entry in manifest)
    assert skill_md.startswith("---\nname: knowledge-distillation-deep")  # from the wheel's share/ folder
    assert "0.6" in advice or "0.7" in advice
    # a uv environment has no pip: the answer is uv's own command, with the CPU build of torch
    assert f"{uv_bin / 'uv'} pip install --python " in message and "--torch-backend cpu" in message, message


def test_the_launcher_provisions_with_uv_when_uv_is_on_path(uv_bin, tmp_path):
    """With uv installed, the plugin launcher's first start uses it (fast, parallel) instead of venv + pip."""
    clone = clean_clone(tmp_path / "plugin")
    data = tmp_path / "data"
    env = user_env(tmp_path / "home", PATH=f"{uv_bin}:{SYSTEM_PATH}", CLAUDE_PLUGIN_ROOT=str(clone), CLAUDE_PLUGIN_DATA=str(data))
    params = StdioServerParameters(command="bash", args=[str(clone / "scripts" / "kd-mcp.sh")], env=env, cwd=str(tmp_path))
    first = start_time(params)
    ready = list(data.glob("venv-*/.kd-ready"))
    assert len(ready) == 1
    assert "uv pip install" in (data / "provision.log").read_text()
    assert "uv = " in (ready[0].parent / "pyvenv.cfg").read_text()  # made by `uv venv`
    print(f"\nfirst start with uv: {first:.1f} s")
    assert start_time(params) < first  # the second start reuses it

