"""Resources: SKILL.md as kd://skill, each references/ topic, each rule file (found in a checkout, an editable
install, or the wheel's share/ folder). Names are checked against the known lists: no path tricks."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from mcp import MCPError, types
from mcp.server import ServerRequestContext

_NAME = re.compile(r"^[a-z0-9-]+$")
SKILL, REFERENCES, RULES = "kd://skill", "kd://references/", "kd://rules/"


def skill_root() -> Path:
    """Folder holding SKILL.md: $KD_SKILL_ROOT, the checkout above this package, or <prefix>/share/."""
    candidates = [
        os.environ.get("KD_SKILL_ROOT"),
        Path(__file__).resolve().parents[1],
        Path(sys.prefix) / "share" / "knowledge-distillation-deep",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "SKILL.md").is_file():
            return Path(candidate)
    raise FileNotFoundError("SKILL.md not found; set KD_SKILL_ROOT to the skill's folder")


def reference_topics() -> list[str]:
    return sorted(p.stem for p in (skill_root() / "references").glob("*.md"))


def read_skill() -> str:
    return (skill_root() / "SKILL.md").read_text(encoding="utf-8")


def read_reference(topic: str) -> str:
    """Text of references/<topic>.md; the topic is checked against the known list."""
    topics = reference_topics()
    if not _NAME.match(topic) or topic not in topics:
        raise KeyError(f"unknown reference topic {topic!r}; known: {', '.join(topics)}")
    return (skill_root() / "references" / f"{topic}.md").read_text(encoding="utf-8")


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
