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


def median_cold_start(params: StdioServerParameters, n: int = 10) -> float:
    return statistics.median(anyio.run(cold_start, params) for _ in range(n))


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


async def distill_over_mcp(output_root: str) -> tuple[float, float]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server", "--output-root", output_root], cwd=str(ROOT), env=ENV)
    before = set(_server_pids())
    async with Client(params, mode="legacy") as client:
        await client.list_tools()
        pid = next(iter(set(_server_pids()) - before))
        t0 = time.perf_counter()
        result = await client.call_tool("kd_run_quick_distill", DISTILL)
        elapsed = time.perf_counter() - t0
        assert not result.is_error, result.content[0].text
        return elapsed, _peak_rss_mb(pid)


def distill_over_cli() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "skill", "distill", "--threads", "2", "--save-artifacts", "false", "--no-progress"],
                   cwd=ROOT, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ours = median_cold_start(OURS)
    ref = reference_server()
    theirs = median_cold_start(ref) if ref else float("nan")
    print(f"cold start (spawn -> tools/list), median of 10: ours {ours * 1000:.0f} ms, mcp-server-time {theirs * 1000:.0f} ms, ratio {ours / theirs:.2f}x")
    med, p99, rate = anyio.run(advisory_latency)
    print(f"kd_recommend_method over stdio, 1000 calls: median {med:.2f} ms, p99 {p99:.2f} ms, {rate:.0f} calls/s")
    with tempfile.TemporaryDirectory() as out:
        mcp_s, peak = anyio.run(distill_over_mcp, out)
    cli_s = distill_over_cli()
    print(f"default quick distill: MCP call {mcp_s:.2f} s, CLI process {cli_s:.2f} s (includes interpreter start), ratio {mcp_s / cli_s:.3f}")
    print(f"server peak RSS during the distill: {peak:.0f} MB")


if __name__ == "__main__":
    main()
