"""Choose the distillation method (what knowledge to transfer) and topology (who teaches whom)."""

from __future__ import annotations

from typing import Any

from skill.conditions import fire_warnings, walk_tree
from skill.models import MethodChoice, RecommendMethodRequest, RecommendMethodResponse, TopologyChoice, TraceEntry
from skill.next_steps import steps
from skill.rules import get_rules


def _hyperparameters(method_id: str, request: RecommendMethodRequest, compression: float | None) -> dict[str, Any]:
    """The method's hyperparameters from the rules, with the temperature range picked for the task and student size."""
    rules = get_rules().method
    hp = {k: (list(v) if isinstance(v, tuple) else v) for k, v in rules["methods"][method_id]["hyperparameters"].items()}
    by_task = hp.pop("temperature_range_by_task", None)
    if by_task is not None:
        band = list(by_task.get(request.task_type, by_task["default"]))
        small = rules["small_student"]
        if compression is not None and compression > small["compression_ratio_above"]:
            low, high = small["temperature_range"]
            band = [max(band[0], low), min(band[1], high)] if max(band[0], low) <= min(band[1], high) else [low, high]
        hp["temperature_range"] = band
    return hp


def recommend_method(request: RecommendMethodRequest) -> RecommendMethodResponse:
    """Walk the method tree and the topology tree in the guidance's order, then fire the risk warnings."""
    rules = get_rules()
    if request.task_type in rules.llm_method["task_types"]:  # language models follow their own rules
        from skill.recommend_llm import recommend_llm

        return recommend_llm(request)
    compression = request.effective_compression()
    inputs = request.model_dump() | {"compression_ratio": compression}
    trace: list[TraceEntry] = []

    method_branch, missing = walk_tree(rules.method["tree"], inputs, "method", trace)
    topology_branch, topo_missing = walk_tree(rules.topology["tree"], inputs, "topology", trace)
    method_id = method_branch["id"]
    method_rules = rules.method["methods"][method_id]
    topology_rules = rules.topology["topologies"][topology_branch["id"]]

    warnings = fire_warnings(rules.method["warnings"], inputs | {"method": method_id}, "method", trace)
    references = list(dict.fromkeys([*method_rules["references"], *topology_rules["references"]]))
    return RecommendMethodResponse(
        method=MethodChoice(
            id=method_id,
            name=method_rules["name"],
            reason=method_branch["reason"],
            hyperparameters=_hyperparameters(method_id, request, compression),
        ),
        topology=TopologyChoice(
            id=topology_branch["id"],
            name=topology_rules["name"],
            reason=topology_branch["reason"],
            runner_topology=topology_rules["runner_topology"],
        ),
        compression_ratio=compression,
        rule_trace=trace,
        warnings=warnings,
        missing_inputs=missing + topo_missing,
        next_steps=steps("alpha", "distill", "diagnose"),
        references=references,
    )
