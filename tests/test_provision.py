"""The launcher's provisioning decisions, without installing anything (the install itself: test_client_wiring.py)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

from skill.distill import requirements

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("kd_provision", ROOT / "scripts" / "provision.py")
provision = importlib.util.module_from_spec(spec)
spec.loader.exec_module(provision)  # type: ignore[union-attr]


def test_requirements_come_from_pyproject_and_torch_only_with_the_distill_extra():
    core = provision.requirements(ROOT, [])
    assert any(r.startswith("mcp") for r in core) and not provision.needs_torch(core)
    with_distill = provision.requirements(ROOT, ["distill"])
    assert with_distill[: len(core)] == core and provision.needs_torch(with_distill)
    names = [requirements.requirement_name(r) for r in requirements.distill_requirements()]
    assert [requirements.requirement_name(r) for r in with_distill[len(core):]] == names  # the server's answer names the same list


def test_an_unknown_extra_is_refused_with_the_known_ones():
    with pytest.raises(SystemExit, match="unknown extra 'gpu'.*distill"):
        provision.requirements(ROOT, ["gpu"])


@pytest.mark.parametrize(("index_env", "expected"), [(None, provision.CPU_TORCH_INDEX), ("", None), ("https://mirror/cpu", "https://mirror/cpu")])
def test_torch_comes_from_the_cpu_index_on_linux_unless_overridden(monkeypatch, index_env, expected):
    monkeypatch.setattr(provision.platform, "system", lambda: "Linux")
    if index_env is None:
        monkeypatch.delenv("KD_TORCH_INDEX", raising=False)
    else:
        monkeypatch.setenv("KD_TORCH_INDEX", index_env)
    pip = provision.install_args(sys.executable, ["torch>=2.2,<3"], uv=None)
    uv = provision.install_args(sys.executable, ["torch>=2.2,<3"], uv="/bin/uv")
    assert (("--extra-index-url" in pip) and pip[pip.index("--extra-index-url") + 1]) == (expected or False)
    assert (("--index" in uv) and uv[uv.index("--index") + 1]) == (expected or False)
    assert "--extra-index-url" not in provision.install_args(sys.executable, ["mcp"], uv=None)  # only torch needs it


def test_torchvision_alone_is_not_mistaken_for_torch():
    assert not provision.needs_torch(["torchvision", "torch-geometric"]) and provision.needs_torch(["torch==2.13.0"])


def test_prune_keeps_the_current_and_recent_environments(tmp_path):
    now = time.time()
    for name, age in (("venv-new", 0), ("venv-recent", 3600), ("venv-old", 3 * 86400), ("venv-1.tmp-99", 2 * 3600), ("venv-2.tmp-98", 60)):
        folder = tmp_path / name
        folder.mkdir()
        marker = folder / provision.READY if ".tmp-" not in name else folder
        if marker != folder:
            marker.write_text("")
        os.utime(marker, (now - age, now - age))
    provision.prune(tmp_path, keep=tmp_path / "venv-new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["venv-2.tmp-98", "venv-new", "venv-recent"]


def test_the_install_answer_names_the_launcher_and_its_environment(monkeypatch, tmp_path):
    launcher = tmp_path / "kd mcp.sh"
    launcher.write_text("")
    monkeypatch.setenv("KD_LAUNCHER", str(launcher))
    monkeypatch.setenv("KD_ENV_DIR", str(tmp_path / "data dir"))
    assert requirements.install_command() == f"bash '{launcher}' --install-distill '{tmp_path / 'data dir'}'"
    monkeypatch.delenv("KD_LAUNCHER")
    assert requirements.install_command().startswith(f"{sys.executable} -m pip install 'torch")
