"""Method and topology for language models (generation, or a classification head on one), from `rules/llm_method.yaml`.

The classification trees answer "soft labels at T 3 to 6" and, with topology inputs missing, born-again
self-distillation; for language models the field distils next-token distributions at T = 1, on the student's
own samples when it is much smaller, through generated (and for reasoning, answer-checked) text when the
tokenizers or the teacher's access forbid token-level targets, and with purpose-built recipes for speculative
decoding drafts and pruned students. This module walks those rules, sizes the teacher-logit storage and plans
the teacher's memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from skill.conditions import fire_warnings, walk_tree
from skill.errors import InputError
from skill.models import (
    MethodChoice,
    MissingInput,
    NextStep,
    RecommendMethodRequest,
    RecommendMethodResponse,
    TopologyChoice,
    TraceEntry,
)
from skill.rules import get_rules

_EXPORT_STEP = NextStep(
    tool="kd_export_recipe",
    cli="kd-skill export --engine trl ...",
    why="Write a TRL training recipe (script, accelerate config, settings, memory plan) with this method's settings.",
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


def human_bytes(n: float) -> str:
    """Decimal units (1 GB = 1e9 bytes), matching the GB thresholds in the rules."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB"):
        if n < 1000 or unit == "ZB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


_human_bytes = human_bytes  # the older private name


def index_bits(vocab_size: int) -> int:
    """Bits that hold any token id of this vocabulary: ceil(log2 V), 17 for 128,256."""
    return max(1, math.ceil(math.log2(vocab_size)))


def logit_storage(dataset_tokens: int, vocab_size: int) -> dict[str, Any]:
    """Bytes to keep the teacher's next-token distributions for every training token: full (fp16, fp32) vs top-k.

    Top-k is given twice: int32 indices (the plain layout) and indices packed in ceil(log2 V) bits, as offline
    logit caches such as DistillKit store them; the values are fp16 normalised log-probabilities either way.
    """
    spec = get_rules().llm_method["logit_storage"]
    top_k = min(spec["top_k"], vocab_size)  # a vocabulary smaller than k keeps every token
    per_token_topk = top_k * (spec["index_bytes"] + spec["value_bytes"])
    bits = index_bits(vocab_size)
    per_token_packed = math.ceil(top_k * (bits + spec["value_bits"]) / 8)
    fp16, fp32 = vocab_size * spec["full_bytes"]["fp16"], vocab_size * spec["full_bytes"]["fp32"]
    return {
        "dataset_tokens": dataset_tokens,
        "vocab_size": vocab_size,
        "full_fp16_bytes_per_token": fp16,
        "full_fp32_bytes_per_token": fp32,
        "full_fp16_bytes": dataset_tokens * fp16,
        "full_fp32_bytes": dataset_tokens * fp32,
        "top_k": top_k,
        "topk_bytes_per_token": per_token_topk,
        "topk_bytes": dataset_tokens * per_token_topk,
        "index_bits": bits,
        "topk_packed_bytes_per_token": per_token_packed,
        "topk_packed_bytes": dataset_tokens * per_token_packed,
        "values": "fp16 log-softmax over the whole vocabulary (normalised): the mass outside the top k is "
        "1 - sum(exp(values))",
    }


def memory_plan(teacher_params: int, student_params: int | None = None) -> dict[str, Any]:
    """The teacher's weights and the student's training state per choice (one GPU, sharded, a server), in bytes.

    The teacher is frozen (weights only, no gradients or optimizer state); the student's 16 bytes per parameter are
    mixed-precision AdamW (ZeRO's count). Whether it fits one GPU, and the N to shard over, come from the TOTAL of
    both; activations (and on-policy KV cache) come on top of it.
    """
    spec = get_rules().llm_method["memory"]
    gpu = spec["gpu_memory_gb"] * 1e9
    weights = {k: int(teacher_params * v) for k, v in spec["teacher_bytes_per_param"].items()}
    bf16 = weights["bf16"]
    student = int(student_params * spec["student_training_bytes_per_param"]) if student_params else None
    total = bf16 + (student or 0)
    gpus = max(1, math.ceil(total / gpu))
    fits = "on one GPU" if gpus == 1 else f"does not fit one {spec['gpu_memory_gb']} GB GPU"
    plan: dict[str, Any] = {
        "teacher_weights_bytes": weights,
        "gpu_memory_gb": spec["gpu_memory_gb"],
        "teacher_gpus_for_bf16_weights": max(1, math.ceil(bf16 / gpu)),
        "student_training_bytes": student,
        "total_bytes": total,
        "gpus_for_total": gpus,
        "note": spec["note"],
        "choices": {
            "local": f"teacher in bf16 beside the student: {human_bytes(bf16)} of weights"
            + (f" + the student's training state {human_bytes(student)}" if student else "")
            + f" = {human_bytes(total)}: {fits}",
            "fsdp_or_zero3": f"teacher sharded over N GPUs: {human_bytes(bf16)} / N each"
            + (f", student state {human_bytes(student)} / N each" if student else "")
            + f"; N >= {gpus} for {'both' if student else 'the teacher weights'}"
            + " (activations on top)",
            "vllm_server": f"teacher on its own GPUs behind vLLM ({human_bytes(bf16)} of bf16 weights "
            "+ KV cache there, "
            f"{human_bytes(weights.get('int8', bf16))} in int8); the trainer holds only the student"
            + (f" ({human_bytes(student)})" if student else "")
            + "; top-k log-probabilities only",
        },
    }
    return plan


def _template_values(inputs: Mapping[str, Any], storage: dict[str, Any] | None, memory: dict[str, Any] | None) -> _Fill:
    """Readable numbers for the rule texts: ratios to 3 figures, byte totals in decimal units, counts with commas."""
    values = _Fill({k: v for k, v in inputs.items() if v is not None})
    if inputs.get("compression_ratio") is not None:
        values["compression_ratio"] = f"{inputs['compression_ratio']:.3g}"
    for key in ("teacher_params", "student_params", "teacher_active_params"):
        if inputs.get(key) is not None:
            values[key] = f"{inputs[key]:,}"
    if storage is not None:
        values.update({k: f"{v:,}" for k, v in storage.items() if isinstance(v, int) and not k.endswith("_bytes")})
        for name in ("full_fp16", "full_fp32", "topk", "topk_packed"):
            values[f"{name}_total"] = human_bytes(storage[f"{name}_bytes"])
    if memory is not None:
        values["teacher_weights_total"] = human_bytes(memory["teacher_weights_bytes"]["bf16"])
        values["teacher_gpus_min"] = memory["teacher_gpus_for_bf16_weights"]
        values["memory_total"] = human_bytes(memory["total_bytes"])
        values["gpus_for_total"] = memory["gpus_for_total"]
        values["student_state_total"] = human_bytes(memory["student_training_bytes"] or 0)
    return values


def _merge_missing(missing: list[MissingInput]) -> list[MissingInput]:
    """One entry per input: several branches read the same field, so join what each would have done."""
    effects: dict[str, list[str]] = {}
    for item in missing:
        if item.effect not in effects.setdefault(item.field, []):
            effects[item.field].append(item.effect)
    return [MissingInput(field=f, effect=" ".join(e)) for f, e in effects.items()]


def _vocab_inputs(request: RecommendMethodRequest) -> dict[str, Any]:
    """Whether the two configs' vocab_size differ (both sizes, or the flag), and the pair as text for the warning."""
    student_rows, teacher_rows = request.student_vocab_size, request.teacher_vocab_size
    padding = get_rules().llm_method["thresholds"]["vocab_padding_rows_at_most"]
    beyond: bool | None = None
    if student_rows is not None and teacher_rows is not None:
        differ: bool | None = student_rows != teacher_rows
        pair = f" (student {student_rows:,}, teacher {teacher_rows:,} rows)"
        beyond = abs(student_rows - teacher_rows) > padding
    else:
        differ = None if request.same_vocab_size is None else not request.same_vocab_size
        pair = ""
    rows = [r for r in (student_rows, teacher_rows) if r is not None]
    larger = request.vocab_size > min(rows) if request.vocab_size is not None and rows else None
    return {
        "vocab_sizes_differ": differ,
        "vocab_pair": pair,
        "vocab_rows_beyond_padding": beyond,
        "tokenizer_larger_than_rows": larger,
        "vocab_rows_min": f"{min(rows):,}" if rows else None,
    }


def _check_planned_temperature(request: RecommendMethodRequest, llm: Mapping[str, Any]) -> None:
    """Refuse a planned temperature no language-model recipe can be exported with."""
    top = llm["thresholds"]["planned_temperature_max"]
    if request.planned_temperature is not None and request.planned_temperature > top:
        raise InputError(
            "planned_temperature",
            f"{request.planned_temperature:g} is above {top:g}, the largest temperature a "
            "language-model recipe can be exported with (llm_method.yaml planned_temperature_max); language "
            "models distil at T = 1, with modest changes at most",
        )


def _tree_inputs(
    request: RecommendMethodRequest,
    llm: Mapping[str, Any],
    compression: float | None,
    storage: dict[str, Any] | None,
    memory: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the trees read: the request, the thresholds, and what follows from them (whether the teacher's logits are
    usable, what storing them and holding both models costs)."""
    inputs: dict[str, Any] = request.model_dump() | {"compression_ratio": compression} | dict(llm["thresholds"])
    inputs |= _vocab_inputs(request)
    inputs["teacher_access_given"] = request.teacher_access
    inputs["same_tokenizer_given"] = request.same_tokenizer
    if request.teacher_active_params is not None and request.student_params is not None:
        inputs["active_below_student"] = request.teacher_active_params < request.student_params
    if request.same_tokenizer and (inputs["vocab_rows_beyond_padding"] or inputs["tokenizer_larger_than_rows"]):
        inputs["same_tokenizer"] = False  # the sizes contradict the claim: no token-level method on it
    if request.teacher_serving == "api":  # a hosted API gives text (and a few top log-probs at most): outputs only
        inputs["teacher_access"] = "outputs_only"
    # the teacher's logits can be used unless it is reachable only through text or the tokenizers differ
    inputs["logits_usable"] = inputs["teacher_access"] != "outputs_only" and request.same_tokenizer is not False
    if storage is not None:
        inputs["full_logit_storage_gb"] = storage["full_fp16_bytes"] / 1e9
    if memory is not None:
        inputs["teacher_weights_gb"] = memory["teacher_weights_bytes"]["bf16"] / 1e9
        inputs["memory_total_gb"] = memory["total_bytes"] / 1e9
        inputs["gpu_memory_gb"] = memory["gpu_memory_gb"]
    return inputs


def _branch_hyperparameters(method_rules: Mapping[str, Any], branch: Mapping[str, Any]) -> dict[str, Any]:
    """The method's hyperparameters with the branch's replacements, less what the branch drops."""
    hyperparameters = _plain(method_rules["hyperparameters"]) | _plain(branch.get("hyperparameters_replace", {}))
    for key in branch.get("hyperparameters_drop", ()):  # e.g. a regression head has no temperature
        hyperparameters.pop(key, None)
    return hyperparameters


def _storage_note(
    hyperparameters: dict[str, Any],
    llm: Mapping[str, Any],
    method_id: str,
    inputs: Mapping[str, Any],
    storage: dict[str, Any] | None,
    storable: bool,
) -> list[MissingInput]:
    """The cost of storing the teacher's logits when they can be stored; the inputs it needs when a token-level
    method lacks them."""
    if storage is not None and storable:
        hyperparameters["teacher_logit_storage"] = storage
    elif storage is None and method_id in ("token_kd", "prune_then_distil"):
        absent = [f for f in ("dataset_tokens", "vocab_size") if inputs.get(f) is None]
        return [MissingInput(field=f, effect=llm["logit_storage"]["missing_effect"]) for f in absent]
    return []


def _memory_note(
    hyperparameters: dict[str, Any],
    request: RecommendMethodRequest,
    llm: Mapping[str, Any],
    method_id: str,
    memory: dict[str, Any] | None,
    logits_usable: bool,
) -> list[MissingInput]:
    """What training holds in memory: a sequence method's teacher generates first, then SFT holds the student alone;
    a logit method holds both. Missing teacher_params when an exported recipe needs the plan."""
    exported = hyperparameters["export_trainer"] != "none"  # a branch can withhold the export (pre-training)
    sequence = method_id in ("sequence_kd", "reasoning_trace_kd")
    if sequence and request.teacher_serving != "api":
        hyperparameters["generation_memory"] = llm["memory"]["generation_note"]
    elif memory is not None and logits_usable and exported:
        hyperparameters["memory_plan"] = memory
    elif memory is None and exported and not sequence:
        return [MissingInput(field="teacher_params", effect=llm["memory"]["missing_effect"])]
    return []


def _student_inputs_missing(
    request: RecommendMethodRequest, llm: Mapping[str, Any], method_id: str
) -> list[MissingInput]:
    """The student facts a method needs: its size for reasoning traces, whether it was fine-tuned for on-policy."""
    missing: list[MissingInput] = []
    if method_id == "reasoning_trace_kd" and request.student_params is None:
        missing.append(MissingInput(field="student_params", effect=llm["missing_effects"]["student_params"]))
    if method_id in ("on_policy_kd", "draft_model_kd") and request.student_finetuned is None:
        missing.append(MissingInput(field="student_finetuned", effect=llm["missing_effects"]["student_finetuned"]))
    return missing


def recommend_llm(request: RecommendMethodRequest) -> RecommendMethodResponse:
    """Walk the language-model tree (purpose, tokenizer, teacher access), pick the topology, fire the warnings."""
    rules = get_rules()
    llm = rules.llm_method
    _check_planned_temperature(request, llm)
    compression = request.effective_compression()
    vocab = request.vocab_size or request.teacher_vocab_size
    storage = logit_storage(request.dataset_tokens, vocab) if request.dataset_tokens and vocab else None
    memory = memory_plan(request.teacher_params, request.student_params) if request.teacher_params else None
    inputs = _tree_inputs(request, llm, compression, storage, memory)
    trace: list[TraceEntry] = []

    branch, missing = walk_tree(llm["tree"], inputs, "llm_method", trace)
    topology_branch, topo_missing = walk_tree(llm["topology"]["tree"], inputs, "llm_topology", trace)
    method_id = branch["method"]
    method_rules = llm["methods"][method_id]
    topology_rules = rules.topology["topologies"][topology_branch["id"]]
    storable = inputs["logits_usable"] and method_id not in llm["logit_storage"]["not_for_methods"]
    hyperparameters = _branch_hyperparameters(method_rules, branch)
    low, high = hyperparameters.get("temperature_range", (None, None))
    derived = {"method": method_id, "logits_storable": storable, "temperature_low": low, "temperature_high": high}
    warnings = fire_warnings(llm["warnings"], inputs | derived, "llm_method", trace)

    missing = missing + topo_missing
    missing += _storage_note(hyperparameters, llm, method_id, inputs, storage, storable)
    missing += _memory_note(hyperparameters, request, llm, method_id, memory, inputs["logits_usable"])
    missing += _student_inputs_missing(request, llm, method_id)
    exported = hyperparameters["export_trainer"] != "none"

    fill = _template_values(inputs | derived, storage, memory)
    if "generation_memory" in hyperparameters:
        weights = fill.get("teacher_weights_total", "2 bytes per parameter")
        hyperparameters["generation_memory"] = hyperparameters["generation_memory"].format_map(
            _Fill(teacher_weights=weights)
        )
    for warning in warnings:
        warning.message = warning.message.format_map(fill)
    missing = _merge_missing([MissingInput(field=m.field, effect=m.effect.format_map(fill)) for m in missing])
    references = list(
        dict.fromkeys([*method_rules["references"], *llm["topology"]["references"], *topology_rules["references"]])
    )
    method = MethodChoice(
        id=method_id,
        name=method_rules["name"],
        reason=branch["reason"].format_map(fill),
        hyperparameters=hyperparameters,
    )
    topology = TopologyChoice(
        id=topology_branch["id"],
        reason=topology_branch["reason"],
        name=topology_rules["name"],
        runner_topology=topology_rules["runner_topology"],
    )
    return RecommendMethodResponse(
        method=method,
        topology=topology,
        compression_ratio=compression,
        rule_trace=trace,
        warnings=warnings,
        missing_inputs=missing,
        # no deployment alpha or classification gates here: their size/accuracy terms are not how an LLM is judged
        next_steps=[_EXPORT_STEP] if exported else [],
        references=references,
    )
