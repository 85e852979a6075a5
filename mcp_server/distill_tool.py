"""kd_run_quick_distill: the runner over MCP, off the event loop, with progress, cancellation and a busy limit."""

from __future__ import annotations

import base64
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, ImageContent

from mcp_server.tools import make_tool, parse_request, structured, tool_error

if TYPE_CHECKING:
    from skill.distill.config import DistillConfig
    from skill.distill.report import DistillReport

log = logging.getLogger("kd.distill")

@dataclass
class Limits:
    """Server-side limits for distillations; set from the command line or the environment."""

    data_root: Path
    output_root: Path
    max_concurrent: int = 1


def limits_from_env() -> Limits:
    return Limits(
        data_root=Path(os.environ.get("KD_DATA_ROOT", os.getcwd())),
        output_root=Path(os.environ.get("KD_OUTPUT_ROOT", os.getcwd())),
        max_concurrent=int(os.environ.get("KD_MAX_DISTILLS", "1")),
    )


def _confined_config(config: "DistillConfig", limits: Limits) -> "DistillConfig":
    """Every user path checked against its root; the output folder is always a fresh one under the output root."""
    from skill.errors import InputError
    from skill.paths import MAX_TEACHER_BYTES, confine

    update: dict[str, Any] = {}
    if config.dataset != "digits":
        update["dataset"] = str(confine(config.dataset, limits.data_root, "dataset", must_exist=True))
    if config.teacher != "train":
        teacher = confine(config.teacher, limits.data_root, "teacher", must_exist=True)
        if teacher.stat().st_size > MAX_TEACHER_BYTES:
            raise InputError("teacher", f"{teacher.name} is larger than {MAX_TEACHER_BYTES // 2**30} GiB")
        update["teacher"] = str(teacher)
    base = confine(config.output_dir or "kd_runs", limits.output_root, "output_dir", must_exist=False)
    run_dir = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    update["output_dir"] = str(run_dir)
    return config.model_copy(update=update)


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

        try:
            config = _confined_config(parse_request("kd_run_quick_distill", kwargs), limits)  # type: ignore[arg-type]
        except InputError as exc:
            raise tool_error(exc) from exc
        if not slots.acquire(blocking=False):
            raise ToolError(f"Busy: {limits.max_concurrent} distillation(s) already running (limit --max-distills); retry when it finishes. "
                            "The advisory tools keep answering meanwhile.")
        stop = threading.Event()
        lock = threading.Lock()
        held = [True]

        def release() -> None:
            """Free the slot exactly once: by the worker when it really ends, or here if it never started."""
            with lock:
                if held[0]:
                    held[0] = False
                    slots.release()

        started = threading.Event()
        try:
            await ctx.report_progress(0, None, "starting: loading PyTorch")  # before torch is imported

            # The worker never waits on the event loop: it queues progress, and a task here sends it.
            updates: queue.SimpleQueue[tuple[float, float, str]] = queue.SimpleQueue()

            async def send_pending() -> None:
                while True:
                    try:
                        await ctx.report_progress(*updates.get_nowait())
                    except queue.Empty:
                        return

            async def pump() -> None:
                while True:
                    await send_pending()
                    await anyio.sleep(0.05)

            def work() -> DistillReport | Exception:
                """Bad input comes back as a value: raised inside the task group it would arrive wrapped in a group."""
                from pydantic import ValidationError

                started.set()
                try:
                    from skill.distill import run_quick_distill

                    return run_quick_distill(config, progress=lambda d, t, m: updates.put((d, t, m)), stop=stop.is_set)
                except (InputError, ValidationError) as exc:
                    return exc
                finally:
                    release()

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pump)
                    outcome = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
                    tg.cancel_scope.cancel()
                await send_pending()
                if not isinstance(outcome, DistillReport):
                    raise tool_error(outcome)
                report = outcome
            except anyio.get_cancelled_exc_class():
                stop.set()  # the abandoned worker stops at its next step and writes no artifact
                log.info("quick distill cancelled")
                raise
        finally:
            if not started.is_set():
                release()
        images = []
        if report.artifacts.plot and Path(report.artifacts.plot).is_file():
            png = base64.b64encode(Path(report.artifacts.plot).read_bytes()).decode()
            images.append(ImageContent(type="image", data=png, mime_type="image/png"))
        return structured(report, images)

    return make_tool(entry, kd_run_quick_distill, context_kwarg="ctx")
