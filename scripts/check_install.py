"""Install the plugin as a user does and measure it, outside the test suite (run with the project's .venv Python):
a clean clone as a local marketplace, a fresh HOME, PATH=/usr/bin:/bin, the pinned Claude Code CLI from npm,
`claude plugin marketplace add` + `claude plugin install`, then `claude mcp list`, and the server started exactly as the
plugin declares it: kd_recommend_method, the one command that adds PyTorch, and a 5-epoch kd_run_quick_distill.

Prints the first-start time, warm starts against mcp-server-time, and what each step installed.
"""

from __future__ import annotations

import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.mcp_server import reference_server  # noqa: E402
from tests.install_helpers import (PLUGIN_SERVER, folder_mb, install_plugin, mcp_list, run, server_line, start_time,  # noqa: E402
                                   torch_install_env)
from tests.mcp_helpers import text_of  # noqa: E402
from tests.npm_tools import CLAUDE_CODE, install  # noqa: E402


async def advise_and_distill(installed, tmp: Path) -> str:
    async with Client(installed.server) as client:
        advice = await client.call_tool("kd_recommend_method", {"task_type": "classification", "task_similarity": 0.95})
        print(f"kd_recommend_method: {advice.structured_content['method']['id']}")
        refused = await client.call_tool("kd_run_quick_distill", {"epochs": 5})
        command = text_of(refused).split("with: ", 1)[1].split(" -- ", 1)[0]
        print(f"kd_run_quick_distill without torch answers: {command}")
        t0 = time.perf_counter()
        before = folder_mb(installed.plugin_data)
        proc = await anyio.to_thread.run_sync(lambda: run(shlex.split(command), torch_install_env(installed.env, tmp), tmp, 1800))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        print(f"that command: {time.perf_counter() - t0:.1f} s, {folder_mb(installed.plugin_data) - before:.0f} MB more")
        t0 = time.perf_counter()
        result = await client.call_tool("kd_run_quick_distill", {"epochs": 5, "teacher_epochs": 5, "threads": 1, "output_dir": "runs"})
        assert not result.is_error, text_of(result)
        return f"5-epoch quick distill in {time.perf_counter() - t0:.1f} s: {result.structured_content['summary']}"


def main() -> int:
    claude = install(CLAUDE_CODE, "claude")
    with tempfile.TemporaryDirectory() as tmp:
        installed = install_plugin(claude, Path(tmp))
        print(f"first `claude mcp list`: {installed.first_line}")
        print(f"first start: environment ready after {installed.first_ready_s:.1f} s, {installed.provisioned_mb:.0f} MB installed")
        print(f"second `claude mcp list`: {server_line(mcp_list(claude, installed.project, installed.env), PLUGIN_SERVER)}")
        ours, theirs = [], []
        reference = reference_server()
        for _ in range(10):
            ours.append(start_time(installed.server))
            if reference is not None:
                theirs.append(start_time(reference))
        warm = statistics.median(ours)
        print(f"warm start (spawn -> tools/list, median of 10): {warm * 1000:.0f} ms"
              + (f"; mcp-server-time {statistics.median(theirs) * 1000:.0f} ms; ratio {warm / statistics.median(theirs):.2f}x" if theirs else ""))
        print(anyio.run(advise_and_distill, installed, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
