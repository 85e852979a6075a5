"""Provision the Python environment the MCP server runs in, for scripts/kd-mcp.sh (standard library only).

Why a separate environment: a plugin or skills-installer copy brings the source but no dependencies, and the
system Python usually lacks mcp and pydantic. The first start installs only the light runtime dependencies
(pyproject's [project].dependencies), so it connects within the client's start-up timeout; PyTorch and the other
[distill] extras come later, on request (`kd-mcp.sh --install-distill`), because they are hundreds of megabytes.

uv is used when it is on PATH (the Python MCP convention, and fast); otherwise `python -m venv` plus pip.
The environment is built in a temporary folder and renamed into place when complete, under a lock, so a start the
client killed half-way, or two clients starting at once, never leave a broken environment behind.
Everything here prints to stderr: on stdio, stdout belongs to the protocol.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

READY = ".kd-ready"  # written last: its presence means the environment is complete
EXTRAS_FILE = ".kd-extras"  # extras installed on request, carried into the next environment
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
STALE_AFTER_S = 86_400  # older environments (a previous pyproject.toml) are removed after a day unused


def say(message: str) -> None:
    print(f"kd-mcp: {message}", file=sys.stderr, flush=True)


def load_pyproject(root: Path) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # 3.10: pip vendors the same parser
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))


def requirements(root: Path, extras: list[str]) -> list[str]:
    """The runtime dependencies plus the named extras, straight from pyproject.toml (the one list)."""
    project = load_pyproject(root)["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"kd-mcp: unknown extra {unknown[0]!r}; pyproject.toml defines: {', '.join(sorted(optional))}")
    return list(project["dependencies"]) + [req for extra in extras for req in optional[extra]]


def torch_index() -> str | None:
    """Where PyTorch comes from: $KD_TORCH_INDEX when set (empty: the default index), else the CPU-only index on
    Linux, where PyPI's torch is the multi-gigabyte CUDA build; macOS and Windows wheels on PyPI are CPU builds."""
    if "KD_TORCH_INDEX" in os.environ:
        return os.environ["KD_TORCH_INDEX"] or None
    return CPU_TORCH_INDEX if platform.system() == "Linux" else None


def needs_torch(reqs: list[str]) -> bool:
    return any(re.match(r"torch\b(?![-_.\w])", req) for req in reqs)


def install_args(python: str, reqs: list[str], uv: str | None) -> list[str]:
    """The install command for `reqs` into `python`'s environment."""
    index = torch_index() if needs_torch(reqs) else None
    if uv:
        cmd = [uv, "pip", "install", "--quiet", "--python", python]
        if index:
            cmd += ["--index", index, "--index-strategy", "unsafe-best-match"]
    else:
        cmd = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
        if index:
            cmd += ["--extra-index-url", index]  # pip picks 2.x+cpu over the plain 2.x build of the same release
    return cmd + reqs


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"kd-mcp: `{' '.join(cmd[:4])} ...` failed (exit {proc.returncode}); the lines above say why")


def env_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def create_env(env: Path, uv: str | None) -> None:
    if uv:
        run([uv, "venv", "--quiet", "--python", sys.executable, str(env)])
        return
    try:
        import ensurepip  # noqa: F401  (Debian and Ubuntu ship it separately, in python3-venv)
        import venv  # noqa: F401
    except ModuleNotFoundError:
        raise SystemExit(f"kd-mcp: {sys.executable} cannot create virtual environments (no venv/ensurepip module). "
                         "Install uv (`pip install --user uv`, or see https://docs.astral.sh/uv/) or your system's "
                         "python3-venv package, then restart the server") from None
    run([sys.executable, "-m", "venv", str(env)])


def carried_extras(data: Path, extras: list[str]) -> list[str]:
    """Extras requested now plus those any earlier environment here had, in a stable order."""
    found = set(extras)
    for marker in data.glob(f"venv-*/{EXTRAS_FILE}"):
        found.update(marker.read_text().split())
    return sorted(found)


def prune(data: Path, keep: Path) -> None:
    now = time.time()
    for old in data.glob("venv-*"):
        ready = old / READY
        unused = not ready.exists() or now - ready.stat().st_mtime > STALE_AFTER_S
        if old != keep and unused and (".tmp-" not in old.name or now - old.stat().st_mtime > 3600):
            shutil.rmtree(old, ignore_errors=True)


def lock(data: Path):
    """An exclusive lock on <data>/.lock for this process's lifetime (POSIX; elsewhere no lock)."""
    handle = open(data / ".lock", "a")
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX)
    except ImportError:
        pass
    return handle


def provision(root: Path, env: Path, extras: list[str]) -> None:
    data = env.parent
    data.mkdir(parents=True, exist_ok=True)
    held = lock(data)  # noqa: F841  (released when the process exits)
    uv = shutil.which("uv")
    if (env / READY).exists():  # ready, perhaps made by another start while we waited: only extras to add
        missing = [e for e in extras if e not in (env / EXTRAS_FILE).read_text().split()] if (env / EXTRAS_FILE).exists() else extras
        if missing:
            add_extras(root, str(env_python(env)), missing, uv)
            (env / EXTRAS_FILE).write_text(" ".join(carried_extras(data, extras)) + "\n")
        return
    wanted = carried_extras(data, extras)
    t0 = time.monotonic()
    say(f"first start: installing the server's dependencies into {env} with {'uv' if uv else 'venv + pip'}"
        + (f" (with extras {', '.join(wanted)})" if wanted else ""))
    tmp = env.with_name(f"{env.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    create_env(tmp, uv)
    python = str(env_python(tmp))
    core = requirements(root, [])
    run(install_args(python, core, uv))
    if wanted:
        add_extras(root, python, wanted, uv)
    (tmp / EXTRAS_FILE).write_text(" ".join(wanted) + "\n")
    (tmp / READY).write_text(f"{time.time()}\n")
    tmp.rename(env)
    prune(data, env)
    say(f"environment ready in {time.monotonic() - t0:.1f} s")


def add_extras(root: Path, python: str, extras: list[str], uv: str | None) -> None:
    reqs = requirements(root, extras)[len(requirements(root, [])):]
    say(f"installing extras {', '.join(extras)}: {' '.join(reqs)}" + (f" (torch from {torch_index()})" if needs_torch(reqs) and torch_index() else ""))
    run(install_args(python, reqs, uv))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the folder holding pyproject.toml")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", type=Path, help="the environment to provision (created if missing)")
    where.add_argument("--into", help="an existing interpreter to add --extras to")
    parser.add_argument("--extras", action="append", default=[], help="optional extras to install too (repeatable)")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 10):
        raise SystemExit(f"kd-mcp: needs Python 3.10 or newer, found {platform.python_version()} at {sys.executable}")
    if args.into:
        add_extras(args.root, args.into, args.extras, shutil.which("uv") if not _has_pip(args.into) else None)
    else:
        provision(args.root, args.env, args.extras)
    return 0


def _has_pip(python: str) -> bool:
    return subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0


if __name__ == "__main__":
    sys.exit(main())
