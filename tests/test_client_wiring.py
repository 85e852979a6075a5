"""Client wiring, installed the way a user installs it, on a machine with only the system Python.

One plugin install per session (a clean clone as a local marketplace, a fresh HOME, PATH=/usr/bin:/bin, no KD_PYTHON,
no project venv, the real Claude Code CLI): the plugin's launcher provisions its own environment on the first start,
and every test here reuses that environment (KD_ENV_DIR) instead of provisioning again.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.install_helpers import (MARKETPLACE, PLUGIN, PLUGIN_SERVER, ROOT, SERVER, SYSTEM_PATH, Installed, clean_clone, declared_server,
                                   imported_modules, install_plugin, mcp_list, run, server_line, start_time, substitute, torch_install_env, trust, uv_folder)
from tests.mcp_helpers import text_of
from tests.npm_tools import CLAUDE_CODE, SKILLS_INSTALLER, install

CLAUDE_STARTUP_TIMEOUT_S = 30  # Claude Code's default MCP start-up timeout (measured: "timed out after 30000ms")


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def claude() -> Path:
    return install(CLAUDE_CODE, "claude")


@pytest.fixture(scope="module")
def installed(claude, tmp_path_factory) -> Installed:
    return install_plugin(claude, tmp_path_factory.mktemp("user"))


def test_manifests_agree():
    """Project scope, the Claude Code plugin and the Cursor plugin all start scripts/kd-mcp.sh, each from its own root."""
    project = _json(ROOT / ".mcp.json")["mcpServers"][SERVER]
    claude_plugin = _json(ROOT / ".claude-plugin" / "plugin.json")
    cursor_plugin = _json(ROOT / ".cursor-plugin" / "plugin.json")
    claude_server = _json(ROOT / claude_plugin["mcpServers"])["mcpServers"][SERVER]
    cursor_server = _json(ROOT / cursor_plugin["mcpServers"])["mcpServers"][SERVER]
    assert project["args"] == ["scripts/kd-mcp.sh"]  # relative to the opened repository, the client's working directory
    assert claude_server["args"] == ["${CLAUDE_PLUGIN_ROOT}/scripts/kd-mcp.sh"]
    assert cursor_server["args"] == ["${CURSOR_PLUGIN_ROOT}/scripts/kd-mcp.sh"]
    assert claude_plugin["mcpServers"] != "./.mcp.json", "the plugin must not use the project-scope file (it has no plugin root)"
    for manifest in (claude_plugin, cursor_plugin):
        assert manifest["name"] == PLUGIN
    assert (ROOT / cursor_plugin["skills"]).is_file()
    marketplace = _json(ROOT / ".claude-plugin" / "marketplace.json")
    assert marketplace["name"] == MARKETPLACE and [p["name"] for p in marketplace["plugins"]] == [PLUGIN]
    assert (ROOT / marketplace["plugins"][0]["source"] / ".claude-plugin" / "plugin.json").is_file()


def test_the_plugin_server_connects_in_claude_code(claude, installed):
    line = server_line(mcp_list(claude, installed.project, installed.env), PLUGIN_SERVER)
    assert str(installed.plugin_root / "scripts" / "kd-mcp.sh") in line and "Connected" in line, line


def test_the_first_start_provisions_light_and_survives_the_client_timeout(installed):
    """The first start installs the light dependencies only. Within Claude Code's 30 s it connects; past it (a slow
    network or a busy machine) Claude Code reports a time-out, the install still completes, and the next start is warm
    (the test above then sees Connected)."""
    envs = [p.parent for p in installed.plugin_data.glob("venv-*/.kd-ready")]
    assert len(envs) == 1 and not list(installed.plugin_data.glob("venv-*.tmp-*")), list(installed.plugin_data.iterdir())
    site = next(envs[0].glob("lib/python3*/site-packages"))
    assert (site / "mcp").is_dir() and (site / "pydantic").is_dir()
    assert not (site / "torch").exists(), "the advisory server's first start must not install torch"
    print(f"\nplugin first start: environment ready {installed.first_ready_s:.1f} s after `claude mcp list` began, "
          f"{installed.provisioned_mb:.0f} MB installed; Claude Code said: {installed.first_line}")
    assert "Connected" in installed.first_line or "timed out" in installed.first_line, installed.first_line
    assert installed.provisioned_mb < 300


def test_a_first_start_the_client_gives_up_on_still_completes(claude, tmp_path):
    """Claude Code kills a server that does not answer within MCP_TIMEOUT (30 s by default). The provisioning runs
    detached, so it completes anyway and the next `claude mcp list` connects. A 100 ms limit forces the case on any
    machine (no Python starts that fast; at 2 s a warm uv provisioned in 1.2 s and the case never happened); uv on PATH
    with a first-time user's empty cache."""
    user = install_plugin(claude, tmp_path, MCP_TIMEOUT="100", PATH=f"{uv_folder(tmp_path / 'bin')}:{SYSTEM_PATH}",
                          UV_CACHE_DIR=str(tmp_path / "empty-uv-cache"))
    assert "timed out after 100ms" in user.first_line, user.first_line
    patient = {k: v for k, v in user.env.items() if k != "MCP_TIMEOUT"}  # the next session, with the default limit
    line = server_line(mcp_list(claude, user.project, patient), PLUGIN_SERVER)
    assert "Connected" in line, line


def test_warm_start_imports_no_more_than_mcp_server_time(installed, tmp_path):
    """Later starts reuse the environment. What makes a start slow is what it imports, so the check counts modules
    imported before tools/list is answered against the reference server (a count does not move with the machine's
    load; the issue-19 rule keeps clocks out of test asserts). Times are printed beside it; bench/mcp_server.py
    measures them properly."""
    from bench.mcp_server import reference_server

    reference = reference_server()
    assert reference is not None, "mcp-server-time is installed by the [bench] extra"
    ours = imported_modules(installed.server, tmp_path / "ours.log")
    theirs = imported_modules(reference, tmp_path / "theirs.log")
    assert not [m for m in ours if m.split(".")[0] in ("torch", "transformers", "trl", "sklearn", "scipy")], "heavy import at start"
    seconds = [(start_time(installed.server), start_time(reference)) for _ in range(3)]
    print(f"\nwarm start: plugin imports {len(ours)} modules, mcp-server-time {len(theirs)}; fastest start "
          f"{min(s for s, _ in seconds) * 1000:.0f} ms vs {min(t for _, t in seconds) * 1000:.0f} ms")
    assert len(ours) <= 1.1 * len(theirs), sorted(set(ours) - set(theirs))[:40]


def test_the_declared_server_advises_and_distills_after_the_one_install_command(installed, tmp_path):
    """kd_recommend_method answers at once; kd_run_quick_distill first answers with the command that installs the
    [distill] extra; after that command it runs a real 5-epoch distillation in the same server, with progress."""
    seen: list[str] = []

    async def session() -> tuple[str, dict, dict]:
        async with Client(installed.server) as client:
            advice = await client.call_tool("kd_recommend_method", {"task_type": "classification", "task_similarity": 0.95})
            assert not advice.is_error, text_of(advice)
            refused = await client.call_tool("kd_run_quick_distill", {"epochs": 5})
            assert refused.is_error
            message = text_of(refused)
            command = message.split("with: ", 1)[1].split(" -- ", 1)[0]
            launcher = installed.plugin_root / "scripts" / "kd-mcp.sh"
            assert command == f"bash {shlex.quote(str(launcher))} --install-distill {shlex.quote(str(installed.plugin_data))}", message
            proc = await anyio.to_thread.run_sync(lambda: run(shlex.split(command), torch_install_env(installed.env, tmp_path), tmp_path, 900))
            assert proc.returncode == 0, proc.stdout + proc.stderr

            async def progress(done: float, total: float | None, message: str | None) -> None:
                seen.append(message or "")

            result = await client.call_tool("kd_run_quick_distill", {"epochs": 5, "teacher_epochs": 5, "threads": 1, "output_dir": "runs"},
                                            progress_callback=progress)
            assert not result.is_error, text_of(result)
            return message, advice.structured_content, result.structured_content

    message, advice, report = anyio.run(session)
    assert "torch" in message and "no restart is needed" in message
    assert advice["method"]["id"] == "response"
    assert report["distilled"]["accuracy"] > 0.5 and report["settings"]["epochs"] == 5 and report["complete"]
    assert seen, "no progress notifications"


def test_project_scope_mcp_json_connects(claude, installed, tmp_path):
    """Someone who opens the repository itself gets the server from .mcp.json."""
    repo = clean_clone(tmp_path / "repo")
    trust(installed.home, repo)
    settings = repo / ".claude" / "settings.local.json"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(json.dumps({"enabledMcpjsonServers": [SERVER]}))
    line = server_line(mcp_list(claude, repo, installed.env | {"KD_ENV_DIR": str(installed.plugin_data)}), SERVER)
    assert "Connected" in line, line


def test_claude_code_reports_a_broken_server(claude, installed, tmp_path):
    """The same check fails when the server cannot start, so the tests above can fail."""
    repo = clean_clone(tmp_path / "repo")
    (repo / "mcp_server" / "__main__.py").write_text("raise SystemExit('broken on purpose')\n")
    trust(installed.home, repo)
    (repo / ".claude").mkdir(exist_ok=True)
    (repo / ".claude" / "settings.local.json").write_text(json.dumps({"enabledMcpjsonServers": [SERVER]}))
    line = server_line(mcp_list(claude, repo, installed.env | {"KD_ENV_DIR": str(installed.plugin_data)}), SERVER)
    assert "Failed to connect" in line, line


def test_the_cursor_plugin_server_starts_as_declared(installed):
    cursor = _json(installed.plugin_root / ".cursor-plugin" / "plugin.json")
    config = _json(installed.plugin_root / cursor["mcpServers"])["mcpServers"][SERVER]
    params = declared_server(config, {"CURSOR_PLUGIN_ROOT": str(installed.plugin_root)}, installed.env | {"KD_ENV_DIR": str(installed.plugin_data)},
                             installed.project)
    assert start_time(params) < CLAUDE_STARTUP_TIMEOUT_S  # warm: the environment the plugin provisioned


def test_skills_installer_then_registering_the_server(claude, installed, tmp_path):
    """`npx skills add` copies the folder; `claude mcp add ... -- bash <folder>/scripts/kd-mcp.sh` adds the server."""
    skills = install(SKILLS_INSTALLER, "skills")
    source = clean_clone(tmp_path / PLUGIN)
    project = tmp_path / "project"
    project.mkdir()
    env = installed.env | {"KD_ENV_DIR": str(installed.plugin_data)}
    proc = run([str(skills), "add", str(source), "-a", "claude-code", "-y"], env, project)
    folder = project / ".claude" / "skills" / PLUGIN
    assert (folder / "scripts" / "kd-mcp.sh").is_file(), proc.stdout + proc.stderr
    added = run([str(claude), "mcp", "add", SERVER, "--", "bash", str(folder / "scripts" / "kd-mcp.sh")], env, project)
    assert added.returncode == 0, added.stdout + added.stderr
    trust(installed.home, project)
    line = server_line(mcp_list(claude, project, env), SERVER)
    assert "Connected" in line, line


def test_claude_code_validates_the_plugin(claude, tmp_path):
    """The repository validates as a Claude Code plugin providing the skill and the server, and as a marketplace."""
    proc = run([str(claude), "plugin", "validate", str(ROOT)], {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, tmp_path, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Validation passed" in out, out
    assert "no line that installs" not in out, out  # the README carries the marketplace install line
    assert 'mcpServers: knowledge-distillation stdio bash ["${CLAUDE_PLUGIN_ROOT}/scripts/kd-mcp.sh"]' in out, out
    assert "skills: knowledge-distillation-deep" in out, out


def test_substitution_refuses_unknown_variables():
    """The helper expands like the client: an unset variable fails instead of silently becoming a relative path."""
    assert substitute("${A}/x", {"A": "/r"}) == "/r/x"
    with pytest.raises(KeyError):
        substitute("${B}/x", {"A": "/r"})
