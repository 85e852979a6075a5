"""The language-model guidance: SKILL.md and references/llm-distillation.md state the numbers of llm_method.yaml."""

from __future__ import annotations

import math
import re

import pytest

from skill.rules import get_rules
from tests.test_skill_docs import ROOT, _anchors, _doc
from tests.test_skill_docs import test_docs_state_the_rule_numbers as assert_docs_state

LLM = get_rules().llm_method
T = LLM["thresholds"]
S = LLM["logit_storage"]
HP = {m: LLM["methods"][m]["hyperparameters"] for m in LLM["methods"]}
TOPK_BYTES = S["top_k"] * (S["index_bytes"] + S["value_bytes"])

NUM = r"(\d+(?:\.\d+)?)"
BOTH = ["SKILL.md", "llm-distillation.md"]
# (pattern, expected numbers, files that must state it)
CLAIMS = [
    (rf"more than {NUM}x smaller", [T["on_policy_compression_above"]], BOTH),
    (rf"`planned_temperature` is above {NUM}", [T["loss_temperature_warn_above"]], BOTH),
    (rf"packing each index in {NUM} bits makes it {NUM} bytes per token", [17, math.ceil(S["top_k"] * (17 + S["value_bits"]) / 8)], ["llm-distillation.md"]),
    (rf"17 for 128k, make it {NUM}", [math.ceil(S["top_k"] * (17 + S["value_bits"]) / 8)], ["SKILL.md"]),
    (rf"warn(?:s|ed)? (?:when the full fp16 store is )?above {NUM} GB", [T["logit_storage_warn_above_gb"]], BOTH),
    (rf"top-{NUM} \(int32 index \+ fp16 value\) is {NUM} bytes per token", [S["top_k"], TOPK_BYTES], BOTH),
    (rf"{NUM} bytes per vocabulary entry in fp16 and {NUM} in fp32", [S["full_bytes"]["fp16"], S["full_bytes"]["fp32"]], ["llm-distillation.md"]),
    (rf"loss temperature is T = {NUM}|loss temperature for language models is {NUM}", [HP["token_kd"]["default_temperature"]], BOTH),
    (rf"on-policy\s+recipe accepts {NUM} to {NUM}", list(HP["on_policy_kd"]["temperature_range"]), ["llm-distillation.md"]),
    (rf"draft recipe {NUM} to {NUM}", list(HP["draft_model_kd"]["temperature_range"]), ["llm-distillation.md"]),
    (rf"`greedy_serving_temperature` \({NUM}\)", [HP["draft_model_kd"]["greedy_serving_temperature"]], ["llm-distillation.md"]),
    (rf"`token_kd` as lmbda {NUM}, beta {NUM}|lmbda {NUM}, beta {NUM} \(forward KL\)", [HP["token_kd"]["trl_lmbda"], HP["token_kd"]["trl_beta"]], BOTH),
    (rf"`on_policy_kd` as lmbda {NUM}, beta {NUM}|lmbda {NUM}, beta {NUM} \(or", [HP["on_policy_kd"]["lmbda"], HP["on_policy_kd"]["beta"]], BOTH),
    (rf"beta {NUM} and lmbda {NUM}, sampling temperature {NUM}",
     [HP["on_policy_kd"]["beta"], HP["on_policy_kd"]["lmbda"], HP["on_policy_kd"]["sampling_temperature"]], ["llm-distillation.md"]),
    (rf"lmbda {NUM}, beta {NUM}; judge by acceptance", [HP["draft_model_kd"]["lmbda"], HP["draft_model_kd"]["beta"]], ["llm-distillation.md"]),
    (rf"starts at beta {NUM} \(JSD\)", [HP["draft_model_kd"]["beta"]], ["llm-distillation.md"]),
    (rf"`samples_per_prompt` {NUM} chains per prompt at temperature {NUM}, top-p {NUM}",
     [HP["reasoning_trace_kd"]["samples_per_prompt"], HP["reasoning_trace_kd"]["teacher_sampling_temperature"], HP["reasoning_trace_kd"]["teacher_top_p"]],
     ["llm-distillation.md"]),
    (rf"`max_new_tokens`\s+{NUM} and `max_length` {NUM}", [HP["reasoning_trace_kd"]["max_new_tokens"], HP["reasoning_trace_kd"]["max_length"]], ["llm-distillation.md"]),
    (rf"{NUM} samples per prompt, answer-checked", [HP["reasoning_trace_kd"]["samples_per_prompt"]], ["llm-distillation.md"]),
    (rf"when `student_params` is {NUM}B or less", [HP["reasoning_trace_kd"]["small_student_params_at_most"] / 1e9], ["llm-distillation.md"]),
    (rf"a reasoning student of {NUM}B or less", [HP["reasoning_trace_kd"]["small_student_params_at_most"] / 1e9], ["SKILL.md"]),
    (rf"about {NUM} bytes per parameter", [LLM["memory"]["student_training_bytes_per_param"]], ["llm-distillation.md"]),
    (rf"{NUM} bytes per parameter in bf16", [LLM["memory"]["teacher_bytes_per_param"]["bf16"]], ["llm-distillation.md"]),
    (rf"more than one {NUM} GB GPU", [LLM["memory"]["gpu_memory_gb"]], ["llm-distillation.md"]),
    (rf"beta {NUM} \(forward KL\), {NUM}\s+\(symmetric JSD\), {NUM} \(reverse KL\)",
     [HP["on_policy_kd"]["beta_choices"][k] for k in ("forward_kl", "jsd", "reverse_kl")], ["llm-distillation.md"]),
    (rf"up to `max_new_tokens` {NUM} tokens", [HP["on_policy_kd"]["max_new_tokens"]], ["llm-distillation.md"]),
    (rf"default completion length is `max_new_tokens` {NUM}", [HP["sequence_kd"]["max_new_tokens"]], ["llm-distillation.md"]),
]


@pytest.mark.parametrize("pattern, expected, files", CLAIMS, ids=[c[0][:40] for c in CLAIMS])
def test_llm_docs_state_the_rule_numbers(pattern, expected, files):
    assert_docs_state(pattern, expected, files)  # the same check as the classification claims


def test_worked_storage_example_is_computed_from_the_rules():
    """The reference's 128,256-vocabulary example, recomputed from the byte counts in the rules."""
    text = _doc("llm-distillation.md")
    per_token = 128_256 * S["full_bytes"]["fp16"]
    assert f"{per_token:,} bytes per token in fp16" in text
    assert f"{per_token * 1e9 / 1e12:.1f} TB" in text
    assert f"{TOPK_BYTES * 1e9 / 1e9:.1f} GB" in text


def test_every_tree_row_and_method_is_in_both_docs():
    for name in BOTH:
        text = _doc(name)
        for method in LLM["methods"]:
            assert f"`{method}`" in text, (name, method)
        for field in ("teacher_access", "same_tokenizer", "planned_temperature", "dataset_tokens", "vocab_size", "student_vocab_size",
                      "teacher_vocab_size", "purpose", "teacher_serving", "student_finetuned", "teacher_active_params", "student_source",
                      "language_model"):
            assert re.search(rf"`{field}\b", text), (name, field)


def test_llm_rule_references_point_at_real_sections():
    refs = {r for m in LLM["methods"].values() for r in m["references"]}
    refs |= {r for w in LLM["warnings"] for r in w["references"]} | set(LLM["topology"]["references"])
    for ref in refs:
        file, _, anchor = ref.partition("#")
        assert (ROOT / file).is_file(), ref
        assert anchor in _anchors(ROOT / file), ref


def test_llm_reference_cites_its_sources():
    text = _doc("llm-distillation.md")
    for source in ("Hinton", "Kim and Rush", "Agarwal et al.", "Gu et al.", "2502.08606", "Muralidharan et al.", "#3028", "#4562", "#3043",
                   "#6252", "#2215", "#6847", "Zhou et al.", "2502.12143", "DeepSeek-R1", "TinyBERT", "EAGLE", "Medusa", "Leviathan", "ZeRO"):
        assert source in text, source


def test_docs_state_no_parameter_ratio_capacity_rule():
    """The 20x rule had no source: the docs say why there is none, and never state a capacity-gap ratio."""
    for name in BOTH:
        text = _doc(name)
        assert "no parameter-ratio" in text or "no parameter-ratio capacity warning" in text, name
        assert not re.search(r"teacher (?:is )?more than \d+x the student", text), name


def test_skill_md_names_every_llm_method():
    text = _doc("SKILL.md")
    for method in LLM["methods"]:
        assert f"`{method}`" in text, method


def _short(value: float) -> str:
    """1e-06 -> 1e-6, 2e-05 -> 2e-5: how the reference writes learning rates."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def test_reference_states_padding_rows_and_trainer_learning_rates():
    text = _doc("llm-distillation.md")
    assert f"differ by under {LLM['thresholds']['vocab_padding_rows_at_most']:,} rows" in text
    rates = LLM["trainer_learning_rates"]
    assert re.search(rf"DistillationConfig sets\s+{_short(rates['DistillationTrainer'])}, SFTConfig {_short(rates['SFTTrainer'])}", text)
