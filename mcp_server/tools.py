"""Register the tools from the stored manifest; validate and run each call with the library's own models.

At start nothing from `skill` is imported: the names, descriptions, annotations and JSON Schemas come from
`tools.json` (generated from the pydantic models, checked by a test). A call validates its arguments with the
library's request model (unknown fields refused), runs the library function and returns its response model
as structured content.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict


class RawArguments(ArgModelBase):
    """Pass the arguments through untouched; the library's request model validates them inside the call."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def tool_error(exc: Exception) -> ToolError:
    """A ToolError whose text names the field, the value and what is accepted."""
    from pydantic import ValidationError

    from skill.errors import describe_validation_error

    if isinstance(exc, ValidationError):
        return ToolError(f"Invalid arguments: {describe_validation_error(exc)}")
    return ToolError(f"Invalid arguments: {exc}")


def parse_request(name: str, arguments: dict[str, Any]) -> BaseModel:
    """Validate with the library model; lists and objects sent as JSON strings (some clients do) are decoded first."""
    from pydantic import ValidationError

    from mcp_server.specs import BY_NAME, request_model

    from skill.strict_json import MAX_DEPTH, bool_as_number, depth

    model = request_model(BY_NAME[name])
    decoded = dict(arguments)
    for key, value in arguments.items():
        field = model.model_fields.get(key)
        if field is not None and isinstance(value, str) and field.annotation is not str and value[:1] in "[{":
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                pass
            except RecursionError:
                raise ToolError(f"Invalid arguments: {key}: the JSON string nests too deeply; at most {MAX_DEPTH} levels") from None
    for key, value in decoded.items():
        if depth(value) > MAX_DEPTH:
            raise ToolError(f"Invalid arguments: {key}: nests more than {MAX_DEPTH} levels deep")
    flagged = bool_as_number(model, decoded)
    if flagged:
        raise ToolError(f"Invalid arguments: {flagged}: true/false is not a number; give a number")
    try:
        return model.model_validate(decoded)
    except ValidationError as exc:
        raise tool_error(exc) from exc


def structured(response: BaseModel, extra: list[Any] | None = None) -> CallToolResult:
    """The response as structured content plus the same JSON as text for clients that only read text."""
    data = response.model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(data, indent=1)), *(extra or [])], structured_content=data)


def make_tool(entry: dict[str, Any], fn: Callable[..., Awaitable[CallToolResult]], context_kwarg: str | None = None) -> Tool:
    """An SDK tool from a manifest entry; the output schema is advertised, the response model guarantees it."""
    return Tool(
        fn=fn,
        name=entry["name"],
        title=entry["title"],
        description=entry["description"],
        parameters=entry["input_schema"],
        fn_metadata=FuncMetadata(arg_model=RawArguments, output_schema=entry["output_schema"]),
        is_async=True,
        context_kwarg=context_kwarg,
        annotations=ToolAnnotations(title=entry["title"], **entry["annotations"]),
    )


ADVISORY_TIMEOUT_S = 30.0  # the most an advisory call may take; its work is linear, so this is far above any real request
def advisory_timeout_s() -> float:
    """KD_ADVISORY_TIMEOUT_S, else the default: a positive number of seconds."""
    import os

    raw = os.environ.get("KD_ADVISORY_TIMEOUT_S")
    try:
        value = float(raw) if raw else ADVISORY_TIMEOUT_S
    except ValueError:
        value = ADVISORY_TIMEOUT_S
    return value if value > 0 else ADVISORY_TIMEOUT_S


def advisory_tool(entry: dict[str, Any], limits: Any = None, timeout_s: float | None = None) -> Tool:
    """An advisory tool whose work runs in a worker thread under a time cap, never on the event loop: while one call
    works, other calls, cancellations and SIGTERM are served (issue 22: one request used to freeze the server)."""
    name = entry["name"]
    cap = timeout_s if timeout_s is not None else advisory_timeout_s()

    async def call(**arguments: Any) -> CallToolResult:
        import anyio
        import anyio.to_thread

        def work() -> Any:
            from mcp_server.specs import BY_NAME
            from skill.commands import COMMANDS
            from skill.errors import InputError
            from skill.run_evidence import RUN_ROOT

            # from_run / run_dir: under the data root or the output root (where recipes and their runs are written)
            token = RUN_ROOT.set((limits.data_root, limits.output_root) if limits is not None else None)
            try:
                request = parse_request(name, arguments)
                return structured(COMMANDS[BY_NAME[name].command].run(request))
            except InputError as exc:
                return tool_error(exc)
            except ToolError as exc:
                return exc
            finally:
                RUN_ROOT.reset(token)

        try:
            with anyio.fail_after(cap):
                # a cancelled or late call stops waiting at once; its thread finishes its (bounded) work unobserved
                outcome = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except TimeoutError:
            raise ToolError(f"{name} took longer than its {cap:g} s cap and was abandoned; shorten the request or "
                            "raise KD_ADVISORY_TIMEOUT_S") from None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    call.__name__ = name
    return make_tool(entry, call)


def _opened_export(request: Any, limits: Any) -> tuple[Any, dict[str, int]]:
    """kd_export_recipe's inputs opened once, race-free: data and weights under the data root, the report under the
    output root (where quick distills write) or the data root. The request then names them by their shown paths, and
    the export reads the descriptors (skill.export.opened); the folder it writes is opened by export_recipe."""
    import os

    from skill.errors import InputError
    from skill.export.request import is_import_path
    from skill.paths import MAX_TEACHER_BYTES, open_input

    update: dict[str, Any] = {}
    files: dict[str, int] = {}

    def take(field: str, root: Any, max_bytes: int | None = None) -> None:
        opened = open_input(getattr(request, field), root, field, max_bytes=max_bytes)
        update[field] = opened.shown
        files[opened.shown] = opened.fd

    try:
        if request.data and request.data != "digits" and not (is_import_path(request.data) and not request.data.endswith((".npz", ".csv"))):
            take("data", limits.data_root)
        if request.teacher_weights:
            take("teacher_weights", limits.data_root, MAX_TEACHER_BYTES)
        if request.from_report:
            try:
                take("from_report", limits.output_root)
            except InputError:
                take("from_report", limits.data_root)
    except BaseException:
        for fd in files.values():
            os.close(fd)
        raise
    return request.model_copy(update=update), files


def export_tool(entry: dict[str, Any], limits: Any) -> Tool:
    """kd_export_recipe: confined paths, the write off the event loop, bad input as a ToolError naming the field."""

    async def kd_export_recipe(**arguments: Any) -> CallToolResult:
        import anyio.to_thread

        from skill.errors import InputError

        request = parse_request("kd_export_recipe", arguments)

        def work() -> Any:
            import os

            from skill.export import export_recipe
            from skill.export.opened import opened_files
            from skill.export.trl import models_confined_to

            files: dict[str, int] = {}
            try:
                confined, files = _opened_export(request, limits)
                with opened_files(files), models_confined_to(limits.data_root):  # TRL model folders: inside the data root
                    return export_recipe(confined, output_root=limits.output_root)
            except InputError as exc:
                return exc
            except OSError as exc:
                return InputError("output_dir", f"cannot write the recipe: {exc.strerror or type(exc).__name__}")  # no server path
            finally:
                for fd in files.values():
                    os.close(fd)

        outcome = await anyio.to_thread.run_sync(work)
        if isinstance(outcome, Exception):
            raise tool_error(outcome) from outcome
        return structured(outcome)

    return make_tool(entry, kd_export_recipe)
