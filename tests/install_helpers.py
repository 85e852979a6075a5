"""What the install-path tests share: a clean clone, a fresh user's environment, and a server started as declared."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PATH = "/usr/bin:/bin"  # a user's machine: the system Python only, no project venv, no uv
CACHE = ROOT / ".cache"
# the CPU build only: the constraint a user gets from the CPU index, here from the machine's local wheels
TORCH_CPU = "torch==2.13.0+cpu"
PLUGIN = "knowledge-distillation-deep"
MARKETPLACE = "knowledge-distillation-deep"
SERVER = "knowledge-distillation"
PLUGIN_SERVER = f"plugin:{PLUGIN}:{SERVER}"


def uv_folder(dest: Path) -> Path:
    """A folder holding only uv and uvx (from the [test] extra), as a user's ~/.local/bin would after installing uv."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert found, "uv is installed by the [test] extra"
    dest.mkdir()
    for name in ("uv", "uvx"):
        (dest / name).symlink_to(Path(found).parent / name)
    return dest


def clean_clone(dest: Path) -> Path:
    """A git clone of HEAD, with the working tree's uncommitted files on top (in CI the two are the same)."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dest)], check=True, capture_output=True, timeout=120)
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """A fresh user's environment: own HOME, system PATH, the machine's pip settings (PIP_*), and download caches
    kept in the checkout so a second run does not fetch the same wheels again."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_") and k != "PIP_CONSTRAINT"}
    if "PIP_CERT" in env:  # this machine reaches PyPI through its own CA bundle: uv reads it from SSL_CERT_FILE
        env["SSL_CERT_FILE"] = env["PIP_CERT"]
    env |= {"HOME": str(home), "PATH": SYSTEM_PATH, "PIP_CACHE_DIR": str(CACHE / "pip"), "UV_CACHE_DIR": str(CACHE / "uv"),
            "CI": "1", "DO_NOT_TRACK": "1", "DISABLE_TELEMETRY": "1"}
    return env | extra


def torch_install_env(env: dict[str, str], tmp: Path) -> dict[str, str]:
    """The environment for the [distill] install in tests: PyTorch pinned to the CPU build, never CUDA."""
    constraint = tmp / "torch-cpu.txt"
    constraint.write_text(TORCH_CPU + "\n")
    return env | {"PIP_CONSTRAINT": str(constraint), "KD_TORCH_INDEX": ""}


def substitute(value: str, variables: dict[str, str]) -> str:
    """${VAR} as a client expands it; an unknown variable is an error, as it is for the client."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: variables[m.group(1)], value)


def declared_server(config: dict[str, Any], variables: dict[str, str], env: dict[str, str], cwd: Path) -> StdioServerParameters:
    """The server exactly as an mcpServers entry declares it, with the client's variables substituted and exported."""
    declared_env = {k: substitute(v, variables) for k, v in config.get("env", {}).items()}
    return StdioServerParameters(command=substitute(config["command"], variables), args=[substitute(a, variables) for a in config.get("args", [])],
                                 env=env | variables | declared_env, cwd=str(cwd))


async def _start(params: StdioServerParameters) -> float:
    t0 = time.perf_counter()
    async with Client(params, mode="legacy") as client:
        await client.list_tools()
    return time.perf_counter() - t0


def start_time(params: StdioServerParameters) -> float:
    """Seconds from spawn to an answered tools/list."""
    return anyio.run(_start, params)


def imported_modules(params: StdioServerParameters, log: Path) -> list[str]:
    """The modules a server imports from spawn to an answered tools/list (Python's own -X importtime record).

    A count, not a clock: it does not move with the machine's load, and a heavy import (torch, numpy's whole stack,
    a second web framework) shows as hundreds of extra modules."""
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    traced = StdioServerParameters(command=params.command, args=params.args, cwd=params.cwd,
                                   env={**(params.env or {}), "PYTHONPROFILEIMPORTTIME": "1"})

    async def listed() -> None:
        with log.open("w") as errlog:
            async with stdio_client(traced, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                await session.list_tools()

    anyio.run(listed)
    rows = [line.split("|")[-1] for line in log.read_text().splitlines() if line.startswith("import time:")]
    return [row.strip() for row in rows[1:]]  # the first row is the column header


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@dataclass
class Installed:
    """A user with the plugin installed from a local marketplace, its server provisioned by its first start."""

    base: Path
    home: Path
    project: Path
    env: dict[str, str]
    plugin_root: Path
    plugin_data: Path
    server: StdioServerParameters
    first_line: str  # what the first `claude mcp list` said about the server (the first start ran under it)
    first_ready_s: float  # from that `claude mcp list` to a complete environment
    provisioned_mb: float


def trust(home: Path, *projects: Path) -> None:
    state = home / ".claude.json"
    data = json.loads(state.read_text()) if state.exists() else {}
    data.setdefault("projects", {}).update({str(p): {"hasTrustDialogAccepted": True} for p in projects})
    state.write_text(json.dumps(data))


def wait_ready(data: Path, timeout_s: float = 600) -> Path:
    """The environment's ready marker; a first start the client gave up on goes on installing in the background."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = list(data.glob("venv-*/.kd-ready"))
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no ready environment under {data} after {timeout_s} s")


def mcp_list(claude: Path, cwd: Path, env: dict[str, str]) -> str:
    proc = run([str(claude), "mcp", "list"], env, cwd, timeout=180)
    return proc.stdout + proc.stderr


def server_line(out: str, name: str) -> str:
    return next((line for line in out.splitlines() if line.startswith(f"{name}:")), f"<no {name} line>\n{out}")


def install_plugin(claude: Path, base: Path, **env_extra: str) -> Installed:
    """Install the plugin as a user does, into a fresh HOME under `base`; its first start runs under `claude mcp list`."""
    home, project = base / "home", base / "project"
    project.mkdir()
    env = user_env(home, **env_extra)
    marketplace = clean_clone(base / "marketplace")
    for cmd in (["plugin", "marketplace", "add", str(marketplace)], ["plugin", "install", f"{PLUGIN}@{MARKETPLACE}"]):
        proc = run([str(claude), *cmd], env, project, timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = json.loads(run([str(claude), "plugin", "list", "--json"], env, project).stdout)
    entry = next(p for p in listed if p["id"] == f"{PLUGIN}@{MARKETPLACE}")
    plugin_root = Path(entry.get("readFromFolder") or entry["installPath"])
    plugin_data = home / ".claude" / "plugins" / "data" / f"{PLUGIN}-{MARKETPLACE}"
    trust(home, project)
    started = time.time()
    first_line = server_line(mcp_list(claude, project, env), PLUGIN_SERVER)  # the first start, under Claude Code's own timeout
    ready = wait_ready(plugin_data)
    variables = {"CLAUDE_PLUGIN_ROOT": str(plugin_root), "CLAUDE_PLUGIN_DATA": str(plugin_data)}
    server = declared_server(entry["mcpServers"][SERVER], variables, env, project)
    return Installed(base, home, project, env, plugin_root, plugin_data, server, first_line, float(ready.read_text()) - started,
                     folder_mb(plugin_data))
