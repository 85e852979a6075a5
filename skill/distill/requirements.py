"""Is the quick-distill runner installable here, and if not, the one command that makes it so.

The advisory server never needs PyTorch, so a plugin or `uvx` install starts without it (the [distill] extra).
When kd_run_quick_distill is called without it, the server answers with the command to run rather than installing
it itself: PyTorch is a few hundred megabytes (CPU build) to several gigabytes (CUDA build), which build to take is
the person's decision, an install inside a tool call would race the client's tool timeout, and the server runs no
installer nobody asked for. The agent can run the command in its shell, where the person sees and approves it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shlex
import shutil
import sys
from pathlib import Path

DIST = "knowledge-distillation-deep"
EXTRA = "distill"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# the import names of the [distill] requirements whose distribution name differs from the module name
MODULES = {"scikit-learn": "sklearn"}


def distill_requirements() -> list[str]:
    """The [distill] extra's requirements: from the installed metadata, else from the checkout's pyproject.toml."""
    try:
        declared = importlib.metadata.requires(DIST) or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    reqs = [r.split(";")[0].strip() for r in declared if re.search(rf"extra\s*==\s*['\"]{EXTRA}['\"]", r)]
    if reqs:
        return reqs
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10 without metadata: name the essentials
        return ["torch>=2.2,<3", "scikit-learn", "safetensors", "matplotlib"]
    return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["optional-dependencies"][EXTRA])


def requirement_name(requirement: str) -> str:
    """The distribution name a requirement starts with ("torch>=2.2,<3" -> "torch")."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    if match is None:
        raise ValueError(f"{requirement!r} does not start with a distribution name")
    return match.group(0)


def missing_modules() -> list[str]:
    """Import names of the [distill] requirements this interpreter cannot import (checked afresh each call, so an
    install made while the server runs is seen without a restart)."""
    importlib.invalidate_caches()
    names = [MODULES.get(requirement_name(r), requirement_name(r)) for r in distill_requirements()]
    return [n for n in names if importlib.util.find_spec(n) is None]


def install_command() -> str:
    """One shell command that installs the [distill] extra into the Python running this server."""
    launcher = os.environ.get("KD_LAUNCHER")
    if launcher and Path(launcher).is_file():
        data = os.environ.get("KD_ENV_DIR")  # set by the launcher when it provisioned this environment
        return f"bash {shlex.quote(launcher)} --install-distill" + (f" {shlex.quote(data)}" if data else "")
    reqs = " ".join(shlex.quote(r) for r in distill_requirements())
    index = CPU_TORCH_INDEX if platform.system() == "Linux" else None
    if importlib.util.find_spec("pip") is not None:
        return f"{shlex.quote(sys.executable)} -m pip install {reqs}" + (f" --extra-index-url {index}" if index else "")
    uv = shutil.which("uv") or "uv"
    return f"{shlex.quote(uv)} pip install --python {shlex.quote(sys.executable)} {reqs}" + (
        " --torch-backend cpu" if index else ""
    )


def missing_message() -> str | None:
    """None when the runner can run; else what is missing and the command to fix it, for an isError result."""
    missing = missing_modules()
    if not missing:
        return None
    return (
        "kd_run_quick_distill needs the optional [distill] packages, and this server's Python lacks "
        f"{', '.join(missing)}. Install them (PyTorch CPU build, a few hundred MB) with: {install_command()} -- then "
        "call kd_run_quick_distill again; no restart is needed. The advisory tools work without them."
    )
