"""Quick-distill jobs: each run in a child process that can always be killed (DESIGN 8, run isolation).

`Jobs(limits).run(config, progress)` admits a run under the busy limit, opens the user's paths once under their
roots (race-free, `skill.paths`), makes a `.<name>.partial` staging folder and starts `python -m skill.distill.worker`
with those descriptors. The worker streams JSON lines back (see its docstring); progress is relayed to the caller.
The worker is killed on cancel, when the time budget plus a short grace is over, and when the server goes away
(its exit closes the worker's stdin); `stop_all()` does the same for a server being terminated. The staging folder
becomes the run folder only when the run finished; otherwise it is removed. Imported by the MCP server: no torch here.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

if TYPE_CHECKING:
    from skill.distill.config import DistillConfig
    from skill.distill.report import DistillReport

log = logging.getLogger("kd.distill")  # the operator's log: a failed worker's stderr tail lands here, unredacted
MAX_MESSAGE_BYTES = 32 * 2**20
MAX_PLOT_BYTES = 8 * 2**20
Progress = Callable[[float, "float | None", str], Awaitable[None]]


@dataclass
class Limits:
    """Server-side limits for distillations; set from the command line or the environment."""

    data_root: Path
    output_root: Path
    max_concurrent: int = 1
    allow_torchscript: bool = False
    memory_mb: int = 3072  # address space each worker may map beyond its loaded libraries (RLIMIT_AS)
    grace_s: float = 10.0  # after time_budget_s, for the evaluation and the artifacts
    startup_s: float = 60.0  # spawn and import torch
    python: str = field(default_factory=lambda: sys.executable)


def positive_int(name: str, raw: str | int) -> int:
    """A count from the command line or the environment: a whole number >= 1, else a one-line error naming it."""
    try:
        value = int(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        value = None
    if value is None or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1; got {raw!r}")
    return value


MIN_MEMORY_MB = 256  # below this a worker cannot even import torch


def limits_from_env(
    data_root: str | None = None,
    output_root: str | None = None,
    max_distills: str | None = None,
    memory_mb: str | None = None,
    allow_torchscript: bool = False,
) -> Limits:
    """The command line's values over KD_DATA_ROOT, KD_OUTPUT_ROOT (default: the working directory), KD_MAX_DISTILLS
    and KD_MAX_DISTILL_MEMORY_MB; ValueError names the bad one and what is accepted."""
    env = os.environ
    count = (
        ("--max-distills", max_distills)
        if max_distills is not None
        else ("KD_MAX_DISTILLS", env.get("KD_MAX_DISTILLS", "1"))
    )
    mb = (
        ("--max-distill-memory-mb", memory_mb)
        if memory_mb is not None
        else ("KD_MAX_DISTILL_MEMORY_MB", env.get("KD_MAX_DISTILL_MEMORY_MB", "3072"))
    )
    limits = Limits(
        data_root=Path(data_root or env.get("KD_DATA_ROOT", os.getcwd())),
        output_root=Path(output_root or env.get("KD_OUTPUT_ROOT", os.getcwd())),
        max_concurrent=positive_int(*count),
        memory_mb=positive_int(*mb),
        allow_torchscript=allow_torchscript,
    )
    if limits.memory_mb < MIN_MEMORY_MB:
        raise ValueError(f"{mb[0]} {limits.memory_mb} is below {MIN_MEMORY_MB}; a quick distill needs more")
    return limits


class JobError(Exception):
    """A run refused or ended without a report: `kind` says whose fault (input), a full house (busy), or the run's."""

    def __init__(self, message: str, kind: Literal["input", "busy", "failure"] = "failure") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class JobResult:
    """A finished run: its report, and the plot's bytes when it wrote one."""

    report: DistillReport
    plot_png: bytes | None


@dataclass
class _Staged:
    """What one worker gets: open descriptors, the staging folder, the job line; and the worker once started."""

    job: dict[str, Any]
    fds: list[int]
    base_fd: int | None = None
    staging: str | None = None
    final: str | None = None
    process: Process | None = None

    def discard(self) -> None:
        """Remove the staging folder (no half run is ever left) and close every descriptor."""
        if self.staging and self.base_fd is not None:
            shutil.rmtree(self.staging, dir_fd=self.base_fd, ignore_errors=True)
            self.staging = None
        for fd in self.fds + ([self.base_fd] if self.base_fd is not None else []):
            os.close(fd)
        self.fds, self.base_fd = [], None

    def publish(self) -> bytes | None:
        """Rename the finished staging folder into place; return the plot's bytes, read through the folder's fd."""
        if not self.staging or self.base_fd is None or self.final is None:
            return None
        os.rename(self.staging, self.final, src_dir_fd=self.base_fd, dst_dir_fd=self.base_fd)
        self.staging = None
        folder = os.open(self.final, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self.base_fd)
        try:
            fd = os.open("plot.png", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
        except OSError:
            return None
        finally:
            os.close(folder)
        with os.fdopen(fd, "rb") as handle:
            return handle.read(MAX_PLOT_BYTES)


def _stage(config: DistillConfig, limits: Limits) -> _Staged:
    """Open every user path once, under its root; refuse TorchScript unless allowed; make the staging folder."""
    from skill.distill.sources import SAFE_TEACHER_SUFFIXES, TORCHSCRIPT_REFUSED
    from skill.errors import InputError
    from skill.paths import MAX_TEACHER_BYTES, open_input, open_output_dir

    staged = _Staged(job={}, fds=[])
    files: dict[str, tuple[str, int]] = {}
    update: dict[str, Any] = {}
    output = None
    try:
        if config.dataset != "digits":
            opened = open_input(config.dataset, limits.data_root, "dataset")
            staged.fds.append(opened.fd)
            files["dataset"] = (opened.shown, opened.fd)
            update["dataset"] = opened.shown
        if config.teacher != "train":
            opened = open_input(config.teacher, limits.data_root, "teacher", max_bytes=MAX_TEACHER_BYTES)
            staged.fds.append(opened.fd)
            if Path(opened.shown).suffix not in SAFE_TEACHER_SUFFIXES and not limits.allow_torchscript:
                raise InputError("teacher", TORCHSCRIPT_REFUSED)
            files["teacher"] = (opened.shown, opened.fd)
            update["teacher"] = opened.shown
        if config.save_artifacts:
            base = open_output_dir(config.output_dir or "kd_runs", limits.output_root, "output_dir")
            staged.base_fd = base.fd
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
            staged.staging, staged.final = f".{name}.partial", name
            os.mkdir(staged.staging, 0o755, dir_fd=base.fd)
            staging_fd = os.open(staged.staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=base.fd)
            staged.fds.append(staging_fd)
            update["output_dir"] = str(Path(base.shown) / name)
            output = {"shown": update["output_dir"], "fd": staging_fd}
    except BaseException:
        staged.discard()
        raise
    staged.job = {
        "config": config.model_copy(update=update).model_dump(mode="json", exclude_unset=True),
        "files": files,
        "output": output,
        "memory_mb": limits.memory_mb,
        "allow_torchscript": limits.allow_torchscript,
    }
    return staged


_ACTIVE: dict[int, _Staged] = {}  # every run in flight in this process, for stop_all()


def stop_all() -> None:
    """For a server being terminated: kill every worker and remove every staging folder (no half run is left)."""
    for staged in list(_ACTIVE.values()):
        if staged.process is not None:
            _kill(staged.process)
        with contextlib.suppress(OSError):
            staged.discard()


_PASSED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "VIRTUAL_ENV",
    "MPLCONFIGDIR",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "PYTHONPATH",
)


def _worker_env(threads: int | None) -> dict[str, str]:
    """Only what Python, torch and matplotlib need: the server's secrets (a bearer token's variable) stay behind."""
    spec = importlib.util.find_spec("skill")
    package_parent = str(Path(spec.origin).resolve().parents[1]) if spec and spec.origin else os.getcwd()
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])),
            "MALLOC_ARENA_MAX": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _kill(process: Process) -> None:
    """SIGKILL the worker's whole process group (it runs in its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _death(returncode: int | None, limits: Limits) -> str:
    """Why a worker that sent no result is gone, in the words an operator can act on."""
    if returncode and returncode < 0 and -returncode in signal.valid_signals():
        how = f"signal {signal.Signals(-returncode).name}"
    else:
        how = f"exit code {returncode}"
    return (
        f"the distillation worker died ({how}) without a result; it may have run out of its memory limit of "
        f"{limits.memory_mb} MiB (--max-distill-memory-mb). No artifacts were written; the server keeps serving"
    )


async def _relay(
    process: Process, staged: _Staged, budget_s: float, limits: Limits, progress: Progress
) -> dict[str, Any] | None:
    """Send the job, relay progress, return the final message (None: the worker ended or overstayed first)."""
    assert process.stdin is not None and process.stdout is not None
    await process.stdin.send((json.dumps(staged.job) + "\n").encode())
    lines = BufferedByteReceiveStream(process.stdout)
    with anyio.move_on_after(limits.startup_s) as scope:  # the deadline moves to budget + grace once torch is loaded
        while True:
            try:
                raw = await lines.receive_until(b"\n", MAX_MESSAGE_BYTES)
            except (anyio.EndOfStream, anyio.IncompleteRead):
                return None
            try:
                message = json.loads(raw)
                kind = message["type"]
            except (ValueError, TypeError, KeyError):
                raise JobError("the worker sent an unreadable message; no artifacts were written") from None
            if kind == "started":
                log.info("distill worker %s started: %s", process.pid, message.get("write_lock"))
                scope.deadline = anyio.current_time() + budget_s + limits.grace_s
            elif kind == "progress":
                await progress(
                    float(message.get("done", 0)),
                    float(message.get("total") or 0) or None,
                    str(message.get("message", ""))[:500],
                )
            else:
                return dict(message)
    raise JobError(
        f"the run passed its time budget ({budget_s:g} s) plus {limits.grace_s:g} s grace (or could not "
        "start) and was stopped; a teacher that never returns does this. No artifacts were written."
    )


async def _run_worker(staged: _Staged, budget_s: float, limits: Limits, progress: Progress) -> dict[str, Any]:
    """Start the worker and return its report; it is killed however this ends (result, error, cancel, overstay)."""
    threads = staged.job["config"].get("threads")
    stderr_tail: collections.deque[bytes] = collections.deque(maxlen=40)
    process = await anyio.open_process(
        [limits.python, "-m", "skill.distill.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=staged.fds,
        start_new_session=True,
        cwd="/",
        env=_worker_env(threads),
    )
    staged.process = process
    outcome: dict[str, Any] | None = None

    async def drain_stderr() -> None:
        assert process.stderr is not None
        async for chunk in process.stderr:
            stderr_tail.append(chunk[-2000:])

    try:
        refused: JobError | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain_stderr)
            try:  # raised out of the group it would arrive wrapped in an ExceptionGroup
                outcome = await _relay(process, staged, budget_s, limits, progress)
            except JobError as exc:
                refused = exc
            tg.cancel_scope.cancel()
        if refused is not None:
            raise refused
        if outcome is None:
            with anyio.move_on_after(5):
                await process.wait()
            raise JobError(_death(process.returncode, limits))
        if outcome["type"] == "error":
            raise JobError(str(outcome["message"]), "input" if outcome.get("kind") == "input" else "failure")
        return dict(outcome["report"])
    finally:
        with anyio.CancelScope(shield=True):
            _kill(process)
            await process.aclose()
            if stderr_tail:  # a failed run's cause, unredacted, belongs in the operator's log (the client got one line)
                failed = outcome is None or outcome.get("type") == "error"
                log.log(
                    logging.WARNING if failed else logging.DEBUG,
                    "worker stderr tail: %s",
                    b"".join(stderr_tail)[-2000:].decode(errors="replace"),
                )


class Jobs:
    """The runs of one server: admission under `limits.max_concurrent`, then one killable worker per run."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_concurrent)

    async def run(self, config: DistillConfig, progress: Progress) -> JobResult:
        """Run one quick distill to its report; InputError for a bad path, JobError for anything else that stops it."""
        from skill.distill.report import DistillReport

        if not self._slots.acquire(blocking=False):
            busy = f"Busy: {self.limits.max_concurrent} distillation(s) already running (limit --max-distills); "
            raise JobError(busy + "retry when it finishes. The advisory tools keep answering meanwhile.", kind="busy")
        staged = None
        try:
            staged = _stage(config, self.limits)
            _ACTIVE[id(staged)] = staged
            await progress(0, None, "starting: loading PyTorch in a worker process")
            raw = await _run_worker(staged, config.time_budget_s, self.limits, progress)
            report = DistillReport.model_validate(raw)
            png = staged.publish() if report.artifacts.output_dir else None  # a run that wrote nothing: no folder
            return JobResult(report, png)
        except anyio.get_cancelled_exc_class():
            log.info("quick distill cancelled; worker killed")
            raise
        finally:
            if staged is not None:
                _ACTIVE.pop(id(staged), None)
                staged.discard()
            self._slots.release()
