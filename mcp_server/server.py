"""The `knowledge-distillation` server: the SDK's low-level `Server` with one handler per MCP method.

Tools in `tools.py`, resources in `docs.py`, the prompt in `prompts.py`; this module only wires them together
(public SDK API only: `mcp.server.Server`, `mcp.types`, `mcp.stdio_server`).
"""

from __future__ import annotations

from mcp import stdio_server
from mcp.server import Server

from mcp_server import docs, prompts
from mcp_server.tools import Tools
from skill import __version__
from skill.distill.jobs import Limits, limits_from_env
from skill.workflow import INSTRUCTIONS


def build_server(limits: Limits | None = None, advisory_timeout_s: float | None = None) -> Server:
    """A fresh server instance (tests build their own; the entry point builds one)."""
    tools = Tools(limits or limits_from_env(), advisory_timeout_s)
    return Server(
        "knowledge-distillation",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=tools.list,
        on_call_tool=tools.call,
        on_list_resources=docs.list_resources,
        on_list_resource_templates=docs.list_templates,
        on_read_resource=docs.read_resource,
        on_list_prompts=prompts.list_prompts,
        on_get_prompt=prompts.get_prompt,
    )


async def serve_stdio(server: Server) -> None:
    """Serve one client over stdin/stdout until it closes stdin."""
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
