"""The `plan_distillation` prompt (its text: `skill.workflow`), filled with the user's case."""

from __future__ import annotations

from mcp import MCPError, types
from mcp.server import ServerRequestContext

from skill.workflow import plan_distillation

PROMPT = types.Prompt(
    name="plan_distillation",
    title="Plan a distillation",
    description=plan_distillation.__doc__,
    arguments=[
        types.PromptArgument(name="model_description", required=True, description="The model to shrink and its task."),
        types.PromptArgument(name="constraints", required=False, description="Size, latency or accuracy limits."),
    ],
)


async def list_prompts(
    ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=[PROMPT])


async def get_prompt(ctx: ServerRequestContext, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    """The filled prompt; an unknown prompt or a missing argument is an invalid-params error naming it."""
    arguments = params.arguments or {}
    if params.name != PROMPT.name:
        raise MCPError(types.INVALID_PARAMS, f"unknown prompt {params.name!r}; known: {PROMPT.name}")
    if not arguments.get("model_description"):
        raise MCPError(types.INVALID_PARAMS, "model_description: required; describe the model to distil")
    text = plan_distillation(arguments["model_description"], arguments.get("constraints") or "none stated")
    message = types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))
    return types.GetPromptResult(description=PROMPT.description, messages=[message])
