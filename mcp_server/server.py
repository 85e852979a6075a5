"""Build the `knowledge-distillation` MCP server: tools, resources and the planning prompt."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError

from mcp_server import docs
from mcp_server import manifest
from mcp_server.distill_tool import Limits, distill_tool, limits_from_env
from mcp_server.prompts import plan_distillation
from mcp_server.tools import advisory_tool, export_tool
from skill import __version__

INSTRUCTIONS = (
    "Knowledge distillation advisor. Start with kd_route_request, then kd_recommend_method and kd_choose_alpha; "
    "run kd_run_quick_distill for evidence, then kd_export_recipe for the full-scale run; score students with kd_score_distillation, check them with "
    "kd_diagnose_failure and kd_check_quality_gates. "
    "Read kd://skill for the workflow."
)


def build_server(limits: Limits | None = None) -> MCPServer:
    """A fresh server instance (tests build their own; the CLI entry point builds one)."""
    limits = limits or limits_from_env()
    special = {"kd_run_quick_distill": lambda e: distill_tool(e, limits), "kd_export_recipe": lambda e: export_tool(e, limits)}
    tools = [special.get(e["name"], lambda e: advisory_tool(e, limits))(e) for e in manifest.load()]
    server = MCPServer("knowledge-distillation", version=__version__, instructions=INSTRUCTIONS, tools=tools, log_level="WARNING")

    @server.resource("kd://skill", name="SKILL.md", description="The skill: when to use it, decisions, workflow, tools.", mime_type="text/markdown")
    def skill_md() -> str:
        return docs.read_skill()

    @server.resource("kd://references/{topic}", name="reference", description="One references/ topic, e.g. methods, failure-modes.", mime_type="text/markdown")
    def reference(topic: str) -> str:
        try:
            return docs.read_reference(topic)
        except KeyError as exc:
            raise ResourceNotFoundError(str(exc.args[0])) from exc

    @server.resource("kd://rules/{name}", name="rule file", description="One rule file (YAML), the source of every threshold.", mime_type="application/yaml")
    def rule(name: str) -> str:
        from skill.rules import rule_file_text

        try:
            return rule_file_text(name)
        except KeyError as exc:
            raise ResourceNotFoundError(str(exc.args[0])) from exc

    server.prompt(name="plan_distillation", title="Plan a distillation", description=plan_distillation.__doc__)(plan_distillation)
    return server
