"""Method and topology for generative models (language models), from `rules/llm_method.yaml`.

The classification trees answer "soft labels at T 3 to 6" and, with topology inputs missing, born-again
self-distillation; for language models the field distils next-token distributions at T = 1, on the student's
own samples when it is much smaller, and only through generated text when the tokenizers or the teacher's
access forbid token-level targets. This module walks those rules and sizes the teacher-logit storage.
"""

from __future__ import annotations

from typing import Any, Mapping

from skill.conditions import fire_warnings, walk_tree
from skill.models import (
    MethodChoice,
    MissingInput,
    NextStep,
    RecommendMethodRequest,
    RecommendMethodResponse,
    TopologyChoice,
    TraceEntry,
)
from skill.next_steps import steps
from skill.rules import get_rules

_EXPORT_STEP = NextStep(
    tool="kd_export_recipe",
    cli="kd-skill export --engine trl ...",
    why="Write a TRL training recipe (script, accelerate config, settings) carrying this method's settings.",
)


class _Fill(dict):
    """Template values for rule texts; an unknown name stays visible instead of raising in a server."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _plain(value: Any) -> Any:
    """Frozen rule data (mappings, tuples) as plain JSON values for the response."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _human_bytes(n: float) -> str:
    """Decimal units (1 GB = 1e9 bytes), matching the GB threshold in the rules."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def logit_storage(dataset_tokens: int, vocab_size: int) -> dict[str, Any]:
    """Bytes to keep the teacher's next-token distributions for every training token: full (fp16, fp32) vs top-k."""
    spec = get_rules().llm_method["logit_storage"]
    per_token_topk = spec["top_k"] * (spec["index_bytes"] + spec["value_bytes"])
    fp16, fp32 = vocab_size * spec["full_bytes"]["fp16"], vocab_size * spec["full_bytes"]["fp32"]
    return {
        "dataset_tokens": dataset_tokens,
        "vocab_size": vocab_size,
        "full_fp16_bytes_per_token": fp16,
        "full_fp32_bytes_per_token": fp32,
        "full_fp16_bytes": dataset_tokens * fp16,
        "full_fp32_bytes": dataset_tokens * fp32,
        "top_k": spec["top_k"],
        "topk_bytes_per_token": per_token_topk,
        "topk_bytes": dataset_tokens * per_token_topk,
    }


def _template_values(inputs: Mapping[str, Any], storage: dict[str, Any] | None) -> _Fill:
    """Readable numbers for the rule texts: ratios to 3 figures, byte totals in decimal units."""
    values = _Fill({k: v for k, v in inputs.items() if v is not None})
    if inputs.get("compression_ratio") is not None:
        values["compression_ratio"] = f"{inputs['compression_ratio']:.3g}"
    if storage is not None:
        values.update({k: f"{v:,}" for k, v in storage.items() if not k.endswith("_bytes")})
        values.update(full_fp16_total=_human_bytes(storage["full_fp16_bytes"]), full_fp32_total=_human_bytes(storage["full_fp32_bytes"]),
                      topk_total=_human_bytes(storage["topk_bytes"]))
    return values


def _merge_missing(missing: list[MissingInput]) -> list[MissingInput]:
    """One entry per input: several branches read the same field, so join what each would have done."""
    effects: dict[str, list[str]] = {}
    for item in missing:
        if item.effect not in effects.setdefault(item.field, []):
            effects[item.field].append(item.effect)
    return [MissingInput(field=f, effect=" ".join(e)) for f, e in effects.items()]


def recommend_llm(request: RecommendMethodRequest) -> RecommendMethodResponse:
    """Walk the generation tree (tokenizer and teacher access first), pick the topology, fire the warnings."""
    rules = get_rules()
    llm = rules.llm_method
    compression = request.effective_compression()
    storage = logit_storage(request.dataset_tokens, request.vocab_size) if request.dataset_tokens and request.vocab_size else None
    inputs: dict[str, Any] = request.model_dump() | {"compression_ratio": compression} | dict(llm["thresholds"])
    # the teacher's logits can be used (and stored) unless it is reachable only through text or the tokenizers differ
    inputs["logits_usable"] = request.teacher_access != "outputs_only" and request.same_tokenizer is not False
    if storage is not None:
        inputs["full_logit_storage_gb"] = storage["full_fp16_bytes"] / 1e9
    trace: list[TraceEntry] = []

    branch, missing = walk_tree(llm["tree"], inputs, "llm_method", trace)
    topology_branch, topo_missing = walk_tree(llm["topology"]["tree"], inputs, "llm_topology", trace)
    method_id = branch["method"]
    method_rules = llm["methods"][method_id]
    topology_rules = rules.topology["topologies"][topology_branch["id"]]
    warnings = fire_warnings(llm["warnings"], inputs | {"method": method_id}, "llm_method", trace)

    hyperparameters = _plain(method_rules["hyperparameters"])
    missing = missing + topo_missing
    if storage is not None and inputs["logits_usable"]:
        hyperparameters["teacher_logit_storage"] = storage
    elif storage is None and method_id == "token_kd":
        absent = [f for f in ("dataset_tokens", "vocab_size") if inputs.get(f) is None]
        missing += [MissingInput(field=f, effect=llm["logit_storage"]["missing_effect"]) for f in absent]

    fill = _template_values(inputs, storage)
    for warning in warnings:
        warning.message = warning.message.format_map(fill)
    missing = _merge_missing([MissingInput(field=m.field, effect=m.effect.format_map(fill)) for m in missing])
    references = list(dict.fromkeys([*method_rules["references"], *llm["topology"]["references"], *topology_rules["references"]]))
    method = MethodChoice(id=method_id, name=method_rules["name"], reason=branch["reason"].format_map(fill), hyperparameters=hyperparameters)
    topology = TopologyChoice(id=topology_branch["id"], reason=topology_branch["reason"], name=topology_rules["name"], runner_topology=topology_rules["runner_topology"])
    return RecommendMethodResponse(
        method=method,
        topology=topology,
        compression_ratio=compression,
        rule_trace=trace,
        warnings=warnings,
        missing_inputs=missing,
        next_steps=[_EXPORT_STEP, *steps("alpha", "gates")],
        references=references,
    )
