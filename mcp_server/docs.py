"""Resources: SKILL.md as kd://skill, each references/ topic, each rule file, as the library reads them
(`skill.docs`, `skill.rules`); an unknown name is an invalid-params error listing the known ones."""

from __future__ import annotations

from mcp import MCPError, types
from mcp.server import ServerRequestContext

from skill.docs import read_reference, read_skill

SKILL, REFERENCES, RULES = "kd://skill", "kd://references/", "kd://rules/"


async def list_resources(
    ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    skill = types.Resource(
        uri=SKILL,
        name="SKILL.md",
        mime_type="text/markdown",
        description="The skill: when to use it, decisions, workflow, tools.",
    )
    return types.ListResourcesResult(resources=[skill])


async def list_templates(
    ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(
        resource_templates=[
            types.ResourceTemplate(
                uri_template=REFERENCES + "{topic}",
                name="reference",
                mime_type="text/markdown",
                description="One references/ topic, e.g. methods, failure-modes.",
            ),
            types.ResourceTemplate(
                uri_template=RULES + "{name}",
                name="rule file",
                mime_type="application/yaml",
                description="One rule file (YAML), the source of every threshold.",
            ),
        ]
    )


async def read_resource(ctx: ServerRequestContext, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    """The text behind a kd:// URI; an unknown one is an invalid-params error listing the known names."""
    uri = str(params.uri)
    try:
        if uri == SKILL:
            text, mime = read_skill(), "text/markdown"
        elif uri.startswith(REFERENCES):
            text, mime = read_reference(uri.removeprefix(REFERENCES)), "text/markdown"
        elif uri.startswith(RULES):
            from skill.rules import rule_file_text

            text, mime = rule_file_text(uri.removeprefix(RULES)), "application/yaml"
        else:
            raise KeyError(f"unknown resource {uri!r}; known: {SKILL}, {REFERENCES}{{topic}}, {RULES}{{name}}")
    except KeyError as exc:
        raise MCPError(types.INVALID_PARAMS, str(exc.args[0]), {"uri": uri}) from None
    return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type=mime, text=text)])
