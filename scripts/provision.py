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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from skill.distill.requirements import CPU_TORCH_INDEX  # noqa: E402  (standard library only, like this script)

READY = ".kd-ready"  # written last: its presence means the environment is complete
EXTRAS_FILE = ".kd-extras"  # extras installed on request, carried into the next environment
STALE_AFTER_S = 86_400  # older environments (a previous pyproject.toml) are removed after a day unused


def say(message: str) -> None:
    try:
        print(f"kd-mcp: {message}", file=sys.stderr, flush=True)
    except OSError:  # the client closed our stderr: carry on, the environment is still wanted
        pass


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


def pip_command(python: str) -> list[str]:
    """pip for `python`'s environment: its own, else this interpreter's pip aimed at it (pip 22.3+ `--python`),
    which spares a fresh environment the seconds ensurepip takes to install a copy of pip."""
    if _works([python, "-m", "pip", "--version"]):
        return [python, "-m", "pip"]
    if _works([sys.executable, "-m", "pip", "--python", python, "--version"]):
        return [sys.executable, "-m", "pip", "--python", python]
    run([python, "-m", "ensurepip", "--default-pip"])
    return [python, "-m", "pip"]


def install_args(python: str, reqs: list[str], uv: str | None) -> list[str]:
    """The install command for `reqs` into `python`'s environment."""
    index = torch_index() if needs_torch(reqs) else None
    if uv:
        cmd = [uv, "pip", "install", "--python", python]
        if index:
            cmd += ["--index", index, "--index-strategy", "unsafe-best-match"]
    else:
        cmd = pip_command(python) + ["install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
        if index:
            cmd += ["--extra-index-url", index]  # pip picks 2.x+cpu over the plain 2.x build of the same release
    return cmd + reqs


def _works(cmd: list[str]) -> bool:
    return subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL).returncode == 0


def run(cmd: list[str], log: Path | None = None) -> None:
    """Run an install step. With a log file its output goes there, not to our stderr: a client that gives up on a
    slow first start closes that pipe, and the step must still finish so the next start finds a ready environment."""
    if log is None:
        proc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, stdin=subprocess.DEVNULL)
    else:
        with open(log, "a") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:]) if log else ""
        raise SystemExit(f"{tail}kd-mcp: `{' '.join(cmd[:4])} ...` failed (exit {proc.returncode})" + (f"; full log: {log}" if log else ""))


def env_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def create_env(env: Path, uv: str | None, log: Path) -> None:
    if uv:
        run([uv, "venv", "--quiet", "--python", sys.executable, str(env)], log)
        return
    try:
        import venv  # noqa: F401  (Debian and Ubuntu ship venv's ensurepip separately, in python3-venv)
    except ModuleNotFoundError:
        venv = None
    if venv is not None and _works([sys.executable, "-m", "pip", "--version"]):
        run([sys.executable, "-m", "venv", "--without-pip", str(env)], log)  # this pip installs into it (pip_command)
        return
    try:
        import ensurepip  # noqa: F401
    except ModuleNotFoundError:
        raise SystemExit(f"kd-mcp: {sys.executable} cannot create a virtual environment with pip (no venv/ensurepip "
                         "module). Install uv (`python3 -m pip install --user uv`, or see https://docs.astral.sh/uv/) or "
                         "your system's python3-venv package, then restart the server") from None
    run([sys.executable, "-m", "venv", str(env)], log)


def carried_extras(data: Path, extras: list[str]) -> list[str]:
    """Extras requested now plus those any earlier environment here had, in a stable order."""
    found = set(extras)
    for marker in data.glob(f"venv-*/{EXTRAS_FILE}"):
        found.update(marker.read_text().split())
    return sorted(found)


def prune(data: Path, keep: Path) -> None:
    """Remove environments of an earlier pyproject.toml once unused for a day, and leftovers of killed starts."""
    now = time.time()
    for old in data.glob("venv-*"):
        ready = old / READY
        stale = now - (ready if ready.exists() else old).stat().st_mtime > (STALE_AFTER_S if ready.exists() else 3600)
        if old != keep and stale:
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
    log = data / "provision.log"
    if (env / READY).exists():  # ready, perhaps made by another start while we waited: only extras to add
        have = (env / EXTRAS_FILE).read_text().split() if (env / EXTRAS_FILE).exists() else []
        missing = [e for e in extras if e not in have]
        if missing:
            add_extras(root, str(env_python(env)), missing, uv, log)
            (env / EXTRAS_FILE).write_text(" ".join(sorted({*have, *missing})) + "\n")
        return
    wanted = carried_extras(data, extras)
    t0 = time.monotonic()
    say(f"first start: installing the server's dependencies into {env} with {'uv' if uv else 'venv + pip'}"
        + (f" (with extras {', '.join(wanted)})" if wanted else "") + f"; log: {log}")
    tmp = env.with_name(f"{env.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    create_env(tmp, uv, log)
    python = str(env_python(tmp))
    run(install_args(python, requirements(root, []), uv), log)
    if wanted:
        add_extras(root, python, wanted, uv, log)
    (tmp / EXTRAS_FILE).write_text(" ".join(wanted) + "\n")
    (tmp / READY).write_text(f"{time.time()}\n")
    shutil.rmtree(env, ignore_errors=True)  # an incomplete folder of that name (ready ones returned above)
    tmp.rename(env)
    prune(data, env)
    say(f"environment ready in {time.monotonic() - t0:.1f} s")


def add_extras(root: Path, python: str, extras: list[str], uv: str | None, log: Path | None = None) -> None:
    reqs = requirements(root, extras)[len(requirements(root, [])):]
    index = torch_index() if needs_torch(reqs) else None
    say(f"installing the {', '.join(extras)} extras: {' '.join(reqs)}" + (f" (torch from {index})" if index else ""))
    run(install_args(python, reqs, uv), log)


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
        add_extras(args.root, args.into, args.extras, None if _works([args.into, "-m", "pip", "--version"]) else shutil.which("uv"))
        return 0
    return detached(lambda: provision(args.root, args.env, args.extras))


def detached(work) -> int:
    """Run `work` in a child in its own session and wait for it. A client that gives up on a slow first start kills
    the launcher (perhaps its whole process group); the child still finishes, so the next start is a warm one."""
    if not hasattr(os, "fork"):
        work()
        return 0
    pid = os.fork()
    if pid == 0:  # the child: a new session, out of reach of signals sent to the launcher's group
        os.setsid()
        code = 0
        try:
            work()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            if not isinstance(exc.code, int):
                say(str(exc.code).removeprefix("kd-mcp: "))
        except BaseException as exc:  # noqa: BLE001  (reported, then the child exits)
            say(f"provisioning failed: {exc!r}")
            code = 1
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


if __name__ == "__main__":
    sys.exit(main())
