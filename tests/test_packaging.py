"""The wheel carries the package, the rule files with their schemas, SKILL.md and references/."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from mcp_server import docs

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contents(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("knowledge_distillation_deep-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    share = next(n.split("/share/")[0] for n in names if n.endswith("/SKILL.md")) + "/share/knowledge-distillation-deep/"
    assert share + "SKILL.md" in names
    assert {share + f"references/{p.name}" for p in (ROOT / "references").glob("*.md")} <= names
    assert {f"skill/rules/{p.name}" for p in (ROOT / "skill" / "rules").glob("*.yaml")} <= names
    assert {f"skill/rules/schemas/{p.name}" for p in (ROOT / "skill" / "rules" / "schemas").glob("*.json")} <= names
    assert {"skill/distill/runner.py", "mcp_server/__main__.py", "skill/cli.py", "mcp_server/tools.json"} <= names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "kd-skill = skill.cli:main" in entry_points and "kd-mcp = mcp_server.__main__:main" in entry_points


def test_installed_docs_are_found_under_the_prefix(tmp_path, monkeypatch):
    """Outside a checkout the server reads SKILL.md from <prefix>/share/knowledge-distillation-deep."""
    share = tmp_path / "share" / "knowledge-distillation-deep"
    (share / "references").mkdir(parents=True)
    (share / "SKILL.md").write_text("---\nname: knowledge-distillation-deep\n---\n")
    (share / "references" / "methods.md").write_text("# Methods\n")
    monkeypatch.delenv("KD_SKILL_ROOT", raising=False)
    monkeypatch.setattr(docs, "__file__", str(tmp_path / "site-packages" / "mcp_server" / "docs.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert docs.skill_root() == share
    assert docs.reference_topics() == ["methods"] and docs.read_reference("methods") == "# Methods\n"
