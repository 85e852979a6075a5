"""Choose alpha, the size-versus-accuracy priority used by the distillation score."""

from __future__ import annotations

from skill.conditions import fire_warnings, walk_tree
from skill.models import ChooseAlphaRequest, ChooseAlphaResponse, TraceEntry
from skill.next_steps import steps
from skill.rules import get_rules


def choose_alpha(request: ChooseAlphaRequest) -> ChooseAlphaResponse:
    """Walk the alpha tree in order; flag a critical domain headed for a small device."""
    rules = get_rules().alpha
    inputs = request.model_dump()
    trace: list[TraceEntry] = []
    branch, missing = walk_tree(rules["tree"], inputs, "alpha", trace)
    warnings = fire_warnings(rules["warnings"], inputs, "alpha", trace)
    checkpoints = branch.get("checkpoints")
    return ChooseAlphaResponse(
        branch=branch["id"],
        alpha_range=list(branch["alpha_range"]),
        alpha=branch["alpha"],
        checkpoints=list(checkpoints) if checkpoints else None,
        reason=branch["reason"],
        rule_trace=trace,
        warnings=warnings,
        missing_inputs=missing,
        next_steps=steps("score", "recommend"),
        references=["references/alpha-and-score.md"],
    )
