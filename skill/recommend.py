"""Choose the distillation method (what knowledge to transfer) and topology (who teaches whom)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skill.conditions import fire_warnings, walk_tree
from skill.models import (
    MethodChoice,
    MissingInput,
    RecommendMethodRequest,
    RecommendMethodResponse,
    TopologyChoice,
    TraceEntry,
)
from skill.next_steps import steps
from skill.rules import get_rules

# planned-temperature warnings that already say what the generic out-of-range one would
_SPECIFIC_TEMPERATURE_WARNINGS = {"planned_temperature_too_low", "planned_temperature_too_high_for_small_student"}


def _hyperparameters(method_id: str, request: RecommendMethodRequest, compression: float | None) -> dict[str, Any]:
    """The method's hyperparameters from the rules, with the temperature range picked for the task and student size."""
    rules = get_rules().method
    hp: dict[str, Any] = {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in rules["methods"][method_id]["hyperparameters"].items()
    }
    by_task = hp.pop("temperature_range_by_task", None)
    if by_task is not None:
        band = list(by_task.get(request.task_type, by_task["default"]))
        small = rules["small_student"]
        if compression is not None and compression > small["compression_ratio_above"]:
            low, high = small["temperature_range"]
            band = [max(band[0], low), min(band[1], high)] if max(band[0], low) <= min(band[1], high) else [low, high]
        hp["temperature_range"] = band
    return hp


def _assumed(
    branch: Mapping[str, Any], missing: list[MissingInput], questions: Mapping[str, str], reason: str | None = None
) -> dict[str, Any]:
    """Reason, `assumed` and the questions to ask when an input an earlier branch needs is missing."""
    fields = list(dict.fromkeys(m.field for m in missing))
    text = reason or branch["reason"]
    if fields:
        text = f"Assumed, because {', '.join(fields)} {'is' if len(fields) == 1 else 'are'} unknown: {text}"
    return {"reason": text, "assumed": bool(fields), "questions": [questions[f] for f in fields if f in questions]}


def _topology(
    rules: Any, inputs: Mapping[str, Any], compression: float | None, trace: list[TraceEntry]
) -> tuple[TopologyChoice, list[MissingInput]]:
    """The topology tree; falling through to self-distillation on unknown inputs is not taken for a smaller student."""
    branch, missing = walk_tree(rules["tree"], inputs, "topology", trace)
    reason = None
    if missing and "when" not in branch and compression is not None and compression > 1:
        fallback = rules["unknown_with_smaller_student"]
        branch, reason = next(b for b in rules["tree"] if b["id"] == fallback["id"]), fallback["reason"]
    topology = rules["topologies"][branch["id"]]
    return TopologyChoice(
        id=branch["id"],
        name=topology["name"],
        runner_topology=topology["runner_topology"],
        **_assumed(branch, missing, rules["questions"], reason),
    ), missing


def recommend_method(request: RecommendMethodRequest) -> RecommendMethodResponse:
    """Walk the method tree and the topology tree in the guidance's order, then fire the risk warnings."""
    rules = get_rules()
    llm = rules.llm_method
    # language models follow their own rules, a classification/regression head on one included
    if request.task_type in llm["task_types"] or (
        request.language_model and request.task_type in llm["head_task_types"]
    ):
        from skill.recommend_llm import recommend_llm

        return recommend_llm(request)
    compression = request.effective_compression()
    inputs = request.model_dump() | {"compression_ratio": compression}
    trace: list[TraceEntry] = []

    method_branch, missing = walk_tree(rules.method["tree"], inputs, "method", trace)
    topology, topo_missing = _topology(rules.topology, inputs, compression, trace)
    method_id = method_branch["id"]
    method_rules = rules.method["methods"][method_id]
    topology_rules = rules.topology["topologies"][topology.id]

    hyperparameters = _hyperparameters(method_id, request, compression)
    band = hyperparameters.get("temperature_range") or [None, None]
    warnings = fire_warnings(
        rules.method["warnings"],
        inputs | {"method": method_id, "temperature_low": band[0], "temperature_high": band[1]},
        "method",
        trace,
    )
    if {w.id for w in warnings} & _SPECIFIC_TEMPERATURE_WARNINGS:
        warnings = [w for w in warnings if w.id != "planned_temperature_outside_range"]
    warnings += fire_warnings(rules.topology["warnings"], inputs | {"topology": topology.id}, "topology", trace)
    references = list(dict.fromkeys([*method_rules["references"], *topology_rules["references"]]))
    return RecommendMethodResponse(
        method=MethodChoice(
            id=method_id,
            name=method_rules["name"],
            hyperparameters=hyperparameters,
            **_assumed(method_branch, missing, rules.method["questions"]),
        ),
        topology=topology,
        compression_ratio=compression,
        rule_trace=trace,
        warnings=warnings,
        missing_inputs=missing + topo_missing,
        next_steps=steps("alpha", "distill", "diagnose"),
        references=references,
    )
