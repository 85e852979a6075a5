"""skill.distill.jobs without MCP and without torch: a scripted stand-in for the worker (Limits.python) speaks the
worker's JSON-line protocol, so each way a run can end is reproduced exactly and cheaply. The real worker is driven
end to end by test_mcp_distill.py, test_distill_sandbox.py and test_freeze_server.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from skill.distill.config import DistillConfig
from skill.distill.jobs import JobError, Jobs, Limits, limits_from_env
from tests.mcp_helpers import staging_folders

HANG_GUARD_S = 60


def _fake_worker(tmp_path: Path, body: str) -> str:
    """An executable that ignores `-m skill.distill.worker`, reads the job line and runs `body` (send(), job, pid)."""
    script = tmp_path / "fake-python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, time\n"
        "job = json.loads(sys.stdin.readline())\n"
        "def send(message):\n"
        "    sys.stdout.write(json.dumps(message) + '\\n'); sys.stdout.flush()\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))\n" + body + "\n"
    )
    script.chmod(0o755)
    return str(script)


def _jobs(tmp_path: Path, body: str, **limits: object) -> Jobs:
    (tmp_path / "out").mkdir(exist_ok=True)
    return Jobs(Limits(data_root=tmp_path, output_root=tmp_path / "out", python=_fake_worker(tmp_path, body), **limits))


def _alive(tmp_path: Path) -> bool:
    try:
        os.kill(int((tmp_path / "pid").read_text()), 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return not Path(f"/proc/{(tmp_path / 'pid').read_text()}/status").read_text().count("State:\tZ")


def _leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").rglob("*"))


def _run(jobs: Jobs, config: DistillConfig, seen: list[str] | None = None) -> object:
    async def progress(done: float, total: float | None, message: str) -> None:
        (seen if seen is not None else []).append(message)

    async def go() -> object:
        with anyio.fail_after(HANG_GUARD_S):
            return await jobs.run(config, progress)

    return anyio.run(go)


CONFIG = DistillConfig(save_artifacts=True, output_dir="runs", time_budget_s=1)


@pytest.mark.parametrize("body, kind, words", [
    ("send({'type': 'started'}); sys.stdout.write('not json\\n'); sys.stdout.flush(); time.sleep(60)",
     "failure", "unreadable message"),
    ("send({'type': 'started'}); sys.exit(3)", "failure", "exit code 3"),
    ("send({'type': 'started'}); send({'type': 'error', 'kind': 'input', 'message': 'dataset: no rows'})",
     "input", "dataset: no rows"),
    ("send({'type': 'started'}); time.sleep(60)", "failure", "time budget (1 s) plus 0.5 s grace"),
], ids=["unreadable", "died", "input_error", "overstayed"])
def test_every_failed_run_is_one_job_error_with_no_worker_and_no_staging_folder_left(tmp_path, body, kind, words):
    jobs = _jobs(tmp_path, body, grace_s=0.5)
    with pytest.raises(JobError) as caught:
        _run(jobs, CONFIG)
    assert caught.value.kind == kind and words in str(caught.value), str(caught.value)
    assert not _alive(tmp_path), "the worker outlived its run"
    assert _leftovers(tmp_path) == ["runs"], "a staging folder was left"


def test_progress_is_relayed_and_what_a_failed_run_wrote_is_removed(tmp_path):
    """A finished run's folder being published is checked with the real worker (test_mcp_distill.py)."""
    body = ("send({'type': 'started'}); send({'type': 'progress', 'done': 1, 'total': 2, 'message': 'epoch 1'})\n"
            "fd = job['output']['fd']; os.write(os.open('plot.png', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), b'PNG')\n"
            "send({'type': 'error', 'kind': 'failure', 'message': 'stop here'})")
    seen: list[str] = []
    with pytest.raises(JobError, match="stop here"):
        _run(_jobs(tmp_path, body), CONFIG, seen)
    assert seen == ["starting: loading PyTorch in a worker process", "epoch 1"]
    assert _leftovers(tmp_path) == ["runs"], "a failed run's staging folder (and its plot) was not removed"


def test_a_second_run_is_refused_while_busy_and_cancel_kills_the_first(tmp_path):
    jobs = _jobs(tmp_path, "send({'type': 'started'}); time.sleep(60)", max_concurrent=1)
    config = DistillConfig(save_artifacts=True, output_dir="runs", time_budget_s=60)
    outcome: dict[str, object] = {}

    async def quiet(done: float, total: float | None, message: str) -> None:
        pass

    async def go() -> None:
        with anyio.fail_after(HANG_GUARD_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(jobs.run, config, quiet)
                while not (tmp_path / "pid").exists() or not staging_folders(tmp_path / "out"):
                    await anyio.sleep(0.01)
                try:
                    await jobs.run(config, quiet)
                except JobError as exc:
                    outcome["busy"] = exc
                tg.cancel_scope.cancel()

    anyio.run(go)
    busy = outcome["busy"]
    assert isinstance(busy, JobError) and busy.kind == "busy" and "--max-distills" in str(busy)
    assert not _alive(tmp_path) and _leftovers(tmp_path) == ["runs"]
    assert jobs._slots.acquire(blocking=False), "the cancelled run kept its slot"


@pytest.mark.parametrize("args, env, words", [
    ({"max_distills": "0"}, {}, "--max-distills must be a whole number >= 1; got '0'"),
    ({}, {"KD_MAX_DISTILLS": "two"}, "KD_MAX_DISTILLS must be a whole number >= 1; got 'two'"),
    ({"memory_mb": "100"}, {}, "--max-distill-memory-mb 100 is below 256"),
    ({}, {"KD_MAX_DISTILL_MEMORY_MB": "128"}, "KD_MAX_DISTILL_MEMORY_MB 128 is below 256"),
])
def test_bad_limits_name_their_source(monkeypatch, args, env, words):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError) as caught:
        limits_from_env(**args)  # type: ignore[arg-type]
    assert words in str(caught.value)


def test_the_command_line_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KD_MAX_DISTILLS", "3")
    monkeypatch.setenv("KD_DATA_ROOT", "/nowhere")
    limits = limits_from_env(data_root=str(tmp_path), max_distills="2", allow_torchscript=True)
    assert (limits.data_root, limits.max_concurrent, limits.allow_torchscript) == (tmp_path, 2, True)
