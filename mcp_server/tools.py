"""The advisory tools: one entry each, built from the shared request/response models.

The tool's argument model *is* the library's request model (plus the SDK's ArgModelBase), so the
JSON Schema, the bounds, the enums and `extra="forbid"` come from `skill.models`, never by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError

from skill import models
from skill.commands import COMMANDS
from skill.errors import InputError, describe_validation_error
from skill.rules import get_rules

_RAW = get_rules().failure_modes["raw_limits"]
ADVISORY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    command: str  # key in skill.commands.COMMANDS
    response: type[BaseModel]
    title: str
    description: str


SPECS = [
    ToolSpec(
        "kd_route_request", "route", models.RouteResponse, "Route a request",
        "Decide whether a request is knowledge distillation (in_scope), belongs to a sibling skill (delegate: which one, "
        "whether it is installed, and a fallback if not), or hits a not-for boundary (out_of_scope). Use it first on a new "
        "request. Not for choosing a method: use kd_recommend_method.",
    ),
    ToolSpec(
        "kd_recommend_method", "recommend", models.RecommendMethodResponse, "Recommend a distillation method and topology",
        "Return the distillation method (response / feature / relation / cascade) with hyperparameters such as the temperature "
        "range, and the topology (hierarchical / ensemble / online / self), with the rule trace, risk warnings and the inputs "
        "whose absence limited the answer. Use when planning a distillation. Not for alpha: use kd_choose_alpha.",
    ),
    ToolSpec(
        "kd_choose_alpha", "alpha", models.ChooseAlphaResponse, "Choose alpha for the distillation score",
        "Return alpha, the size-versus-accuracy priority (a range and a point value, plus checkpoints when routing by difficulty "
        "is possible), for a deployment environment and application domain, with conflicts flagged. Alpha weights the distillation "
        "score. Use before kd_score_distillation. Not for the KD loss weight (kd_loss_weight of kd_run_quick_distill).",
    ),
    ToolSpec(
        "kd_score_distillation", "score", models.ScoreDistillationResponse, "Score or rank students",
        "Return the distillation score DS = alpha*(student size/teacher size) + (1-alpha)*(1 - student acc/teacher acc) with both "
        "terms, or a ranking of up to 100 candidates, best (lowest) first. Accuracies are fractions in [0, 1]. Use to compare "
        "students at a chosen alpha. Not for a quality check: use kd_diagnose_failure.",
    ),
    ToolSpec(
        "kd_diagnose_failure", "diagnose", models.DiagnoseFailureResponse, "Diagnose a distilled model",
        "Check the five failure modes (accuracy_mirage, temperature_blindness, capacity_cliff, hierarchical_rigidity, "
        "bias_amplification); each is detected, clear or not_evaluated with evidence against its threshold and the fix. Give "
        f"summary numbers or raw labels + probabilities (at most {_RAW['max_samples']} samples and {_RAW['max_values']} values; it computes "
        "accuracy, per-class accuracy and ECE). Use after "
        "training a student or when it underperforms. Not for choosing a method: use kd_recommend_method.",
    ),
    ToolSpec(
        "kd_check_quality_gates", "gates", models.QualityGatesResponse, "Check the release quality gates",
        "Return pass / fail / unknown for each of the ten quality gates (score with alpha, stratified validation, temperature and "
        "calibration, capacity cliff, bias monitoring, robustness suite, cascade above 5x, multi-agent coordination, budgets, "
        "rollback), with what is missing. Use before shipping a student or to review a plan. Not for diagnosing accuracy: use kd_diagnose_failure.",
    ),
]


def strict_arguments(name: str, request: type[BaseModel]) -> type[ArgModelBase]:
    """The request model with the SDK's argument base mixed in; unknown fields stay forbidden.

    Its validator is built on the first call (defer_build), which keeps the server's start short."""
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, defer_build=True)
    return type(f"{name}_arguments", (request, ArgModelBase), {"model_config": config})


def tool_error(exc: Exception) -> ToolError:
    """A ToolError whose text names the field, the value and what is accepted."""
    if isinstance(exc, ValidationError):
        return ToolError(f"Invalid arguments: {describe_validation_error(exc)}")
    return ToolError(f"Invalid arguments: {exc}")


def make_tool(
    name: str, request: type[BaseModel], response: type[BaseModel], fn: Callable[..., Awaitable[Any]], *,
    title: str, description: str, annotations: ToolAnnotations, context_kwarg: str | None = None,
) -> Tool:
    """Build an MCP tool whose schemas come from the pydantic models."""
    args = strict_arguments(name, request)
    return Tool(
        fn=fn,
        name=name,
        title=title,
        description=description,
        parameters=request.model_json_schema(by_alias=True),  # the same fields; the request model is already built
        fn_metadata=FuncMetadata(arg_model=args, output_model=response),
        is_async=True,
        context_kwarg=context_kwarg,
        annotations=annotations.model_copy(update={"title": title}),
    )


def advisory_tool(spec: ToolSpec) -> Tool:
    command = COMMANDS[spec.command]

    async def call(**kwargs: Any) -> BaseModel:
        try:
            return command.run(command.request.model_validate(kwargs))
        except (ValidationError, InputError) as exc:
            raise tool_error(exc) from exc

    call.__name__ = spec.name
    return make_tool(spec.name, command.request, spec.response, call, title=spec.title, description=spec.description, annotations=ADVISORY)


def advisory_tools() -> list[Tool]:
    return [advisory_tool(spec) for spec in SPECS]
