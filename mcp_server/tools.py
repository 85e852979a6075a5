"""The tools: listed from tools.json, each call checked by the library's model and answered by the library.

Listing imports nothing from `skill`'s models (the manifest is stored JSON). A call is translated, never decided:
its arguments go through `skill.strict_json.validate` (the advertised schemas are not trusted), advisory tools run
`skill.commands` in a worker thread under a cap (so other calls, cancels and SIGTERM are served meanwhile), the
export runs `skill.export.confined`, the quick distill runs a `skill.distill.jobs` job. Every failure comes back as
an isError result with one line naming the field, never a protocol error or a traceback.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread
from mcp import types
from mcp.server import ServerRequestContext
from pydantic import BaseModel

from mcp_server import manifest
from skill.distill.jobs import JobError, Jobs, Limits

if TYPE_CHECKING:
    from skill.distill.config import DistillConfig
    from skill.export.request import ExportRequest

log = logging.getLogger("kd.mcp")
ADVISORY_TIMEOUT_S = 30.0  # advisory work is linear in its input: a real request takes far less than this
JOB_PREFIX = {"input": "Invalid arguments: ", "busy": "", "failure": "kd_run_quick_distill failed: "}


def advisory_timeout_s() -> float:
    """KD_ADVISORY_TIMEOUT_S when it is a positive number of seconds, else the default."""
    try:
        value = float(os.environ.get("KD_ADVISORY_TIMEOUT_S") or ADVISORY_TIMEOUT_S)
    except ValueError:
        value = ADVISORY_TIMEOUT_S
    return value if value > 0 else ADVISORY_TIMEOUT_S


def listed() -> list[types.Tool]:
    """Each tool as the manifest describes it: names, text, annotations, input and output schemas."""
    return [
        types.Tool(**{**e, "annotations": types.ToolAnnotations(title=e["title"], **e["annotations"])})
        for e in manifest.load()
    ]


def structured(response: BaseModel, extra: list[types.ContentBlock] | None = None) -> types.CallToolResult:
    """The response as structured content, plus the same JSON as text for clients that only read text."""
    data = response.model_dump(mode="json")
    text = types.TextContent(type="text", text=json.dumps(data, indent=1))
    return types.CallToolResult(content=[text, *(extra or [])], structured_content=data)


def failed(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


class BadArguments(ValueError):
    """The one-line message a client gets back as an isError result."""


def describe(exc: Exception) -> BadArguments:
    """'Invalid arguments: <field>: <problem> (got <value>)', from a pydantic error or an InputError."""
    from pydantic import ValidationError

    from skill.errors import describe_validation_error

    text = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
    return BadArguments(f"Invalid arguments: {text}")


def parse_request(name: str, arguments: dict[str, Any]) -> BaseModel:
    """The tool's request model, validated by the library; BadArguments otherwise."""
    from pydantic import ValidationError

    from skill.errors import InputError
    from skill.strict_json import validate
    from skill.tool_specs import BY_NAME, request_model

    try:
        return validate(request_model(BY_NAME[name]), arguments)
    except (InputError, ValidationError) as exc:
        raise describe(exc) from exc


class Tools:
    """The tools/list and tools/call handlers of one server, over its limits and its jobs."""

    def __init__(self, limits: Limits, timeout_s: float | None = None) -> None:
        self.limits, self.jobs = limits, Jobs(limits)
        self.cap = timeout_s if timeout_s is not None else advisory_timeout_s()
        self.tools = listed()
        self.names = [t.name for t in self.tools]

    async def list(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.tools)

    async def call(self, ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
        name, arguments = params.name, dict(params.arguments or {})
        if name not in self.names:
            return failed(f"Unknown tool {name!r}; known: {', '.join(self.names)}")
        try:
            if name == "kd_run_quick_distill":
                return await self.quick_distill(ctx, arguments)
            if name == "kd_export_recipe":
                return await self.in_thread(name, lambda: self.export(arguments), cap=None)
            return await self.in_thread(name, lambda: self.advise(name, arguments), cap=self.cap)
        except BadArguments as exc:
            return failed(str(exc))
        except Exception as exc:  # a bug of ours: the operator's log gets the traceback, the client one line
            log.exception("%s raised", name)
            return failed(f"{name} failed: internal error ({type(exc).__name__}); the server keeps serving")

    def advise(self, name: str, arguments: dict[str, Any]) -> BaseModel:
        """One advisory command; run folders (from_run, run_dir) may lie under either root, read-only."""
        from skill.commands import run_under
        from skill.tool_specs import BY_NAME

        roots = (self.limits.data_root, self.limits.output_root)
        return run_under(BY_NAME[name].command, parse_request(name, arguments), roots)

    def export(self, arguments: dict[str, Any]) -> BaseModel:
        from skill.export.confined import export_confined

        request = cast("ExportRequest", parse_request("kd_export_recipe", arguments))
        return export_confined(request, self.limits.data_root, self.limits.output_root)

    async def in_thread(self, name: str, work: Callable[[], BaseModel], cap: float | None) -> types.CallToolResult:
        """Run `work` off the event loop; past `cap` (or on cancel) stop waiting: its bounded work ends unobserved."""
        from skill.errors import InputError

        def guarded() -> BaseModel | Exception:
            try:
                return work()
            except (InputError, BadArguments) as exc:
                return exc

        try:
            with anyio.fail_after(cap):
                outcome = await anyio.to_thread.run_sync(guarded, abandon_on_cancel=cap is not None)
        except TimeoutError:
            return failed(
                f"{name} took longer than its {cap:g} s cap and was abandoned; shorten the request or "
                "raise KD_ADVISORY_TIMEOUT_S"
            )
        if isinstance(outcome, Exception):
            return failed(str(outcome if isinstance(outcome, BadArguments) else describe(outcome)))
        return structured(outcome)

    async def quick_distill(self, ctx: ServerRequestContext, arguments: dict[str, Any]) -> types.CallToolResult:
        """A killable job with progress notifications; the plot comes back as an image beside the report."""
        from skill.distill.requirements import missing_message
        from skill.errors import InputError

        if (missing := missing_message()) is not None:  # without the [distill] extra: the command that installs it
            return failed(missing)
        config = cast("DistillConfig", parse_request("kd_run_quick_distill", arguments))

        async def progress(done: float, total: float | None, message: str) -> None:
            await ctx.session.report_progress(done, total, message)

        try:
            result = await self.jobs.run(config, progress)
        except InputError as exc:
            return failed(str(describe(exc)))
        except JobError as exc:
            return failed(JOB_PREFIX[exc.kind] + str(exc))
        plot: list[types.ContentBlock] = []
        if result.plot_png:
            plot.append(
                types.ImageContent(type="image", data=base64.b64encode(result.plot_png).decode(), mime_type="image/png")
            )
        return structured(result.report, plot)
