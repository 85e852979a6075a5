"""Packaging: a wheel and an sdist that build without warnings and carry the package, the rule files with their
schemas, SKILL.md and references/; and `pip install` of that wheel into a fresh environment, used as a person would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from skill import docs
from tests.install_helpers import clean_clone, run, user_env
from tests.mcp_helpers import text_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, str]:
    """(wheel, sdist, the build's whole output) from `python -m build` on a clean clone, as a release would be built."""
    base = tmp_path_factory.mktemp("build")
    clone = clean_clone(base / "src")
    # byte-compiling is off in this machine's environment, which setuptools reports as a warning of its own
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"HOME": str(base / "home")}
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(base / "dist"), str(clone)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return next((base / "dist").glob("*.whl")), next((base / "dist").glob("*.tar.gz")), proc.stdout + proc.stderr


def test_build_has_no_warnings(built):
    _, _, output = built
    warnings = [line for line in output.splitlines() if "warn" in line.lower() or "deprecat" in line.lower()]
    assert warnings == [], "\n".join(warnings)


def test_wheel_contents(built):
    wheel, _, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    share = next(n.split("/share/")[0] for n in names if n.endswith("/SKILL.md")) + "/share/knowledge-distillation-deep/"
    assert share + "SKILL.md" in names
    assert {share + f"references/{p.name}" for p in (ROOT / "references").glob("*.md")} <= names
    assert {f"skill/rules/{p.name}" for p in (ROOT / "skill" / "rules").glob("*.yaml")} <= names
    assert {f"skill/rules/schemas/{p.name}" for p in (ROOT / "skill" / "rules" / "schemas").glob("*.json")} <= names
    lexicon = {f"skill/rules/lexicon/{p.name}" for p in (ROOT / "skill" / "rules" / "lexicon").glob("*.yaml")}
    assert len(lexicon) >= 6 and lexicon <= names  # routing's words: without them the rules cannot load
    assert {f"skill/routing/{p.name}" for p in (ROOT / "skill" / "routing").glob("*.py")} <= names
    assert {"skill/distill/runner.py", "mcp_server/__main__.py", "skill/distill/requirements.py", "skill/cli.py", "mcp_server/tools.json"} <= names
    assert {f"skill/export/templates/kd_recipe/{p.name}" for p in (ROOT / "skill" / "export" / "templates" / "kd_recipe").glob("*.py")} <= names
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata and f"{info}/licenses/LICENSE" in names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any(line.startswith("Requires-Dist: torch") and "extra == \"distill\"" in line for line in requires), requires
    assert not any("torch" in line and "extra" not in line for line in requires), "torch must be optional"
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "kd-skill = skill.cli:main" in entry_points and "kd-mcp = mcp_server.__main__:main" in entry_points


def test_sdist_contents(built):
    _, sdist, _ = built
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    assert {"pyproject.toml", "LICENSE", "SKILL.md", "mcp_server/tools.json"} <= names
    assert {f"skill/rules/schemas/{p.name}" for p in (ROOT / "skill" / "rules" / "schemas").glob("*.json")} <= names
    assert {f"skill/rules/lexicon/{p.name}" for p in (ROOT / "skill" / "rules" / "lexicon").glob("*.yaml")} <= names
    assert {f"references/{p.name}" for p in (ROOT / "references").glob("*.md")} <= names


def test_pip_install_of_the_wheel_works_without_torch(built, tmp_path):
    """`pip install knowledge-distillation-deep` (no extras) in a fresh venv of the system Python: the CLI and the
    MCP server work; the runner says how to add the [distill] extra instead of failing with a traceback."""
    wheel, _, _ = built
    env = user_env(tmp_path / "home")
    venv = tmp_path / "venv"
    for cmd in (["/usr/bin/python3", "-m", "venv", str(venv)], [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)]):
        proc = run(cmd, env, tmp_path, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    advice = run([str(venv / "bin" / "kd-skill"), "recommend", "--task-type", "classification", "--task-similarity", "0.95"], env, tmp_path)
    assert advice.returncode == 0 and json.loads(advice.stdout)["method"]["id"] == "response", advice.stderr
    distill = run([str(venv / "bin" / "kd-skill"), "distill"], env, tmp_path)
    assert distill.returncode == 2 and "knowledge-distillation-deep[distill]" in distill.stderr and "Traceback" not in distill.stderr, distill.stderr

    async def session() -> tuple[int, str, str]:
        async with Client(StdioServerParameters(command=str(venv / "bin" / "kd-mcp"), env=env, cwd=str(tmp_path))) as client:
            tools = await client.list_tools()
            skill = await client.read_resource("kd://skill")
            refused = await client.call_tool("kd_run_quick_distill", {"epochs": 5})
            assert refused.is_error
            return len(tools.tools), skill.contents[0].text, text_of(refused)

    n_tools, skill_md, message = anyio.run(session)
    assert n_tools == len(json.loads((ROOT / "mcp_server" / "tools.json").read_text())) and skill_md.startswith("---\nname: knowledge-distillation-deep")
    assert f"{venv / 'bin' / 'python'} -m pip install 'torch" in message, message


def test_installed_docs_are_found_under_the_prefix(tmp_path, monkeypatch):
    """Outside a checkout the server reads SKILL.md from <prefix>/share/knowledge-distillation-deep."""
    share = tmp_path / "share" / "knowledge-distillation-deep"
    (share / "references").mkdir(parents=True)
    (share / "SKILL.md").write_text("---\nname: knowledge-distillation-deep\n---\n")
    (share / "references" / "methods.md").write_text("# Methods\n")
    monkeypatch.delenv("KD_SKILL_ROOT", raising=False)
    monkeypatch.setattr(docs, "__file__", str(tmp_path / "site-packages" / "skill" / "docs.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert docs.skill_root() == share
    assert docs.reference_topics() == ["methods"] and docs.read_reference("methods") == "# Methods\n"
