"""kd_run_quick_distill: each run in a child process the server can always kill, with progress, cancellation and a busy limit.

The server resolves the user's paths once and opens them (race-free, `skill.paths`), makes a staging folder, and
starts `python -m skill.distill.worker` with those descriptors. The worker streams progress back over a pipe.
It is killed on cancel, when the time budget plus a short grace is over, and when the client goes away (the
server's exit closes the worker's stdin). The staging folder becomes the run folder only when the run finished;
otherwise it is removed. The server never imports torch.
"""

from __future__ import annotations

import base64
import collections
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, ImageContent

from mcp_server.tools import make_tool, parse_request, structured, tool_error

if TYPE_CHECKING:
    from skill.distill.config import DistillConfig

log = logging.getLogger("kd.distill")
MAX_MESSAGE_BYTES = 32 * 2**20
MAX_PLOT_BYTES = 8 * 2**20


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


def limits_from_env() -> Limits:
    return Limits(
        data_root=Path(os.environ.get("KD_DATA_ROOT", os.getcwd())),
        output_root=Path(os.environ.get("KD_OUTPUT_ROOT", os.getcwd())),
        max_concurrent=positive_int("KD_MAX_DISTILLS", os.environ.get("KD_MAX_DISTILLS", "1")),
        memory_mb=positive_int("KD_MAX_DISTILL_MEMORY_MB", os.environ.get("KD_MAX_DISTILL_MEMORY_MB", "3072")),
    )


@dataclass
class _Prepared:
    """What the worker gets: open descriptors, the staging folder, the job line."""

    job: dict[str, Any]
    fds: list[int]
    base_fd: int | None = None
    staging: str | None = None
    final: str | None = None
    process: Any = None

    def close(self) -> None:
        for fd in self.fds + ([self.base_fd] if self.base_fd is not None else []):
            os.close(fd)


def _prepare(config: "DistillConfig", limits: Limits) -> _Prepared:
    """Open every user path once, under its root; refuse TorchScript unless allowed; make the staging folder."""
    from skill.distill.sources import SAFE_TEACHER_SUFFIXES, TORCHSCRIPT_REFUSED
    from skill.errors import InputError
    from skill.paths import MAX_TEACHER_BYTES, open_input, open_output_dir

    prepared = _Prepared(job={}, fds=[])
    files: dict[str, tuple[str, int]] = {}
    update: dict[str, Any] = {}
    try:
        if config.dataset != "digits":
            opened = open_input(config.dataset, limits.data_root, "dataset")
            prepared.fds.append(opened.fd)
            files["dataset"] = (opened.shown, opened.fd)
            update["dataset"] = opened.shown
        if config.teacher != "train":
            opened = open_input(config.teacher, limits.data_root, "teacher", max_bytes=MAX_TEACHER_BYTES)
            prepared.fds.append(opened.fd)
            if Path(opened.shown).suffix not in SAFE_TEACHER_SUFFIXES and not limits.allow_torchscript:
                raise InputError("teacher", TORCHSCRIPT_REFUSED)
            files["teacher"] = (opened.shown, opened.fd)
            update["teacher"] = opened.shown
        output = None
        if config.save_artifacts:
            base = open_output_dir(config.output_dir or "kd_runs", limits.output_root, "output_dir")
            prepared.base_fd = base.fd
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
            prepared.staging, prepared.final = f".{name}.partial", name
            os.mkdir(prepared.staging, 0o755, dir_fd=base.fd)
            staging_fd = os.open(prepared.staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=base.fd)
            prepared.fds.append(staging_fd)
            update["output_dir"] = str(Path(base.shown) / name)
            output = {"shown": update["output_dir"], "fd": staging_fd}
    except BaseException:
        _discard(prepared)
        raise
    prepared.job = {"config": config.model_copy(update=update).model_dump(mode="json", exclude_unset=True), "files": files, "output": output,
                    "memory_mb": limits.memory_mb, "allow_torchscript": limits.allow_torchscript}
    return prepared


_ACTIVE: dict[int, _Prepared] = {}


def stop_all_runs() -> None:
    """For a server being terminated: kill every worker and remove every staging folder (no half run is left)."""
    for prepared in list(_ACTIVE.values()):
        if prepared.process is not None:
            _kill(prepared.process)
        try:
            _discard(prepared)
        except OSError:
            pass


def _discard(prepared: _Prepared) -> None:
    """Remove the staging folder (no half run is ever left) and close every descriptor."""
    if prepared.staging and prepared.base_fd is not None:
        shutil.rmtree(prepared.staging, dir_fd=prepared.base_fd, ignore_errors=True)
        prepared.staging = None
    prepared.close()


def _publish(prepared: _Prepared) -> bytes | None:
    """Rename the finished staging folder into place; return the plot's bytes, read through the folder's descriptor."""
    if not prepared.staging or prepared.base_fd is None:
        return None
    os.rename(prepared.staging, prepared.final, src_dir_fd=prepared.base_fd, dst_dir_fd=prepared.base_fd)  # type: ignore[arg-type]
    prepared.staging = None
    folder = os.open(prepared.final, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=prepared.base_fd)  # type: ignore[arg-type]
    try:
        fd = os.open("plot.png", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(MAX_PLOT_BYTES)


_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "VIRTUAL_ENV", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONPATH")


def _worker_env(threads: int | None) -> dict[str, str]:
    """Only what Python, torch and matplotlib need: the server's secrets (a bearer token's variable) stay behind."""
    spec = importlib.util.find_spec("skill")
    package_parent = str(Path(spec.origin).resolve().parents[1]) if spec and spec.origin else os.getcwd()
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update({"PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])),
                "MALLOC_ARENA_MAX": "2", "PYTHONUNBUFFERED": "1"})
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _kill(process: Any) -> None:
    """SIGKILL the worker's whole process group (it runs in its own session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _death(returncode: int | None, limits: Limits) -> str:
    how = f"signal {signal.Signals(-returncode).name}" if returncode and returncode < 0 and -returncode in signal.valid_signals() else f"exit code {returncode}"
    return (f"the distillation worker died ({how}) without a result; it may have run out of its memory limit of {limits.memory_mb} MiB "
            "(--max-distill-memory-mb). No artifacts were written; the server keeps serving")


async def _run_worker(ctx: Context, prepared: _Prepared, budget_s: float, limits: Limits) -> dict[str, Any]:
    """Start the worker, relay its progress, and return its report; kill it when it overstays or the call ends."""
    threads = prepared.job["config"].get("threads")
    stderr_tail: collections.deque[bytes] = collections.deque(maxlen=40)
    process = await anyio.open_process([limits.python, "-m", "skill.distill.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, pass_fds=prepared.fds, start_new_session=True, cwd="/",
                                       env=_worker_env(threads))
    prepared.process = process
    outcome: dict[str, Any] | None = None

    async def drain_stderr() -> None:
        async for chunk in process.stderr:  # type: ignore[union-attr]
            stderr_tail.append(chunk[-2000:])

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain_stderr)
            await process.stdin.send((json.dumps(prepared.job) + "\n").encode())  # type: ignore[union-attr]
            lines = BufferedByteReceiveStream(process.stdout)  # type: ignore[arg-type]
            with anyio.move_on_after(limits.startup_s) as scope:
                while outcome is None:
                    try:
                        raw = await lines.receive_until(b"\n", MAX_MESSAGE_BYTES)
                    except (anyio.EndOfStream, anyio.IncompleteRead):
                        break
                    try:
                        message = json.loads(raw)
                        kind = message["type"]
                    except (ValueError, TypeError, KeyError):
                        raise ToolError("kd_run_quick_distill failed: the worker sent an unreadable message; no artifacts were written") from None
                    if kind == "started":
                        log.info("distill worker %s started: %s", process.pid, message.get("write_lock"))
                        scope.deadline = anyio.current_time() + budget_s + limits.grace_s
                    elif kind == "progress":
                        await ctx.report_progress(float(message.get("done", 0)), float(message.get("total") or 0) or None,
                                                  str(message.get("message", ""))[:500])
                    else:
                        outcome = message
            tg.cancel_scope.cancel()
        if outcome is None and scope.cancelled_caught:
            raise ToolError(f"kd_run_quick_distill: the run passed its time budget ({budget_s:g} s) plus {limits.grace_s:g} s grace "
                            "(or could not start) and was stopped; a teacher that never returns does this. No artifacts were written.")
        if outcome is None:
            with anyio.move_on_after(5):
                await process.wait()
            raise ToolError(_death(process.returncode, limits))
        if outcome["type"] == "error":
            prefix = "Invalid arguments: " if outcome.get("kind") == "input" else "kd_run_quick_distill failed: "
            raise ToolError(prefix + str(outcome["message"]))
        return outcome["report"]
    finally:
        with anyio.CancelScope(shield=True):
            _kill(process)
            await process.aclose()
            if stderr_tail:  # a failed run's cause, unredacted, belongs in the operator's log (the client got one line)
                failed = outcome is None or outcome.get("type") == "error"
                log.log(logging.WARNING if failed else logging.DEBUG, "worker stderr tail: %s",
                        b"".join(stderr_tail)[-2000:].decode(errors="replace"))


def distill_tool(entry: dict[str, Any], limits: Limits) -> Tool:
    slots = threading.BoundedSemaphore(limits.max_concurrent)

    async def kd_run_quick_distill(ctx: Context, **kwargs: Any) -> CallToolResult:
        # --- issue 12: without the [distill] extra, answer with the one command that installs it (mcp_server/torch_env.py)
        from mcp_server.torch_env import missing_message

        if (missing := missing_message()) is not None:
            raise ToolError(missing)
        # --- end issue 12
        from skill.distill.report import DistillReport
        from skill.errors import InputError

        config = parse_request("kd_run_quick_distill", kwargs)
        if not slots.acquire(blocking=False):
            raise ToolError(f"Busy: {limits.max_concurrent} distillation(s) already running (limit --max-distills); retry when it finishes. "
                            "The advisory tools keep answering meanwhile.")
        prepared = None
        try:
            try:
                prepared = _prepare(config, limits)  # type: ignore[arg-type]
                _ACTIVE[id(prepared)] = prepared
            except InputError as exc:
                raise tool_error(exc) from exc
            await ctx.report_progress(0, None, "starting: loading PyTorch in a worker process")
            report = DistillReport.model_validate(await _run_worker(ctx, prepared, config.time_budget_s, limits))  # type: ignore[attr-defined]
            png = _publish(prepared) if report.artifacts.output_dir else None  # a run that wrote nothing leaves no folder
        except anyio.get_cancelled_exc_class():
            log.info("quick distill cancelled; worker killed")
            raise
        finally:
            if prepared is not None:
                _ACTIVE.pop(id(prepared), None)
                _discard(prepared)
            slots.release()
        images = [ImageContent(type="image", data=base64.b64encode(png).decode(), mime_type="image/png")] if png else []
        return structured(report, images)

    return make_tool(entry, kd_run_quick_distill, context_kwarg="ctx")
