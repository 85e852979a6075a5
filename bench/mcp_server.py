"""Benchmark (not a test) of the MCP server, numbers measured here:
- cold start: spawn -> initialize + tools/list answered over stdio, median of 10, beside mcp-server-time measured the same way;
- advisory latency: kd_recommend_method round trips over one stdio session (median, p99, calls/s over 1000 calls);
- quick distill through MCP versus the same run through the CLI (overhead ratio);
- peak resident memory of the server process during a default quick distill."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
OURS = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server"], cwd=str(ROOT), env=ENV)
DISTILL = {"threads": 2, "save_artifacts": False}


def reference_server() -> StdioServerParameters | None:
    # the console script beside this interpreter (a pyenv shim would add its own start-up time)
    exe = str(Path(sys.executable).parent / "mcp-server-time")
    if Path(exe).exists():
        return StdioServerParameters(command=exe, args=["--local-timezone", "UTC"], env=dict(os.environ))
    return None


async def cold_start(params: StdioServerParameters) -> float:
    t0 = time.perf_counter()
    async with Client(params, mode="legacy") as client:
        await client.list_tools()
    return time.perf_counter() - t0


def paired_cold_starts(ours: StdioServerParameters, theirs: StdioServerParameters | None, n: int = 10) -> tuple[float, float]:
    """Medians of n starts each, interleaved (ours, theirs, ours, ...) so machine drift hits both alike."""
    a, b = [], []
    for _ in range(n):
        a.append(anyio.run(cold_start, ours))
        if theirs is not None:
            b.append(anyio.run(cold_start, theirs))
    return statistics.median(a), statistics.median(b) if b else float("nan")


async def advisory_latency(n: int = 1000) -> tuple[float, float, float]:
    async with Client(OURS, mode="legacy") as client:
        await client.list_tools()
        times = []
        t_all = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            await client.call_tool("kd_recommend_method", {"task_type": "classification", "task_similarity": 0.9, "compression_ratio": 16})
            times.append(time.perf_counter() - t0)
        total = time.perf_counter() - t_all
    times.sort()
    return statistics.median(times) * 1000, times[int(0.99 * len(times)) - 1] * 1000, n / total


def _server_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
                if b"mcp_server" in cmd and b"-m" in cmd:
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def distill_over_mcp(output_root: str) -> tuple[float, float, float]:
    """(seconds for the call alone, seconds from spawning the server to the answer, server peak RSS in MB)."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server", "--output-root", output_root], cwd=str(ROOT), env=ENV)
    before = set(_server_pids())
    t_spawn = time.perf_counter()
    async with Client(params, mode="legacy") as client:
        await client.list_tools()
        pid = next(iter(set(_server_pids()) - before))
        t0 = time.perf_counter()
        result = await client.call_tool("kd_run_quick_distill", DISTILL)
        elapsed = time.perf_counter() - t0
        assert not result.is_error, result.content[0].text
        return elapsed, time.perf_counter() - t_spawn, _peak_rss_mb(pid)


def distill_over_cli() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "skill", "distill", "--threads", "2", "--save-artifacts", "false", "--no-progress"],
                   cwd=ROOT, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ours, theirs = paired_cold_starts(OURS, reference_server())
    print(f"cold start (spawn -> tools/list), median of 10: ours {ours * 1000:.0f} ms, mcp-server-time {theirs * 1000:.0f} ms, ratio {ours / theirs:.2f}x")
    med, p99, rate = anyio.run(advisory_latency)
    print(f"kd_recommend_method over stdio, 1000 calls: median {med:.2f} ms, p99 {p99:.2f} ms, {rate:.0f} calls/s")
    runs = []
    for _ in range(3):  # interleaved, median of 3
        with tempfile.TemporaryDirectory() as out:
            call_s, spawn_call_s, peak = anyio.run(distill_over_mcp, out)
        runs.append((call_s, spawn_call_s, peak, distill_over_cli()))
    call_s, spawn_call_s, peak, cli_s = (statistics.median(r[i] for r in runs) for i in range(4))
    print(f"default quick distill (median of 3): CLI process {cli_s:.2f} s; MCP spawn + call {spawn_call_s:.2f} s (call alone {call_s:.2f} s); "
          f"MCP overhead ratio {spawn_call_s / cli_s:.3f}")
    print(f"server peak RSS during the distill: {peak:.0f} MB")


if __name__ == "__main__":
    main()
