"""Generative models: every branch of the generation tree, its topology, and every warning with its numbers."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from mcp_server.server import build_server
from skill.models import RecommendMethodRequest, RouteRequest
from skill.recommend import recommend_method
from skill.recommend_llm import logit_storage
from skill.routing import route_request
from skill.rules import RuleFileError, get_rules, load_rules_from, rules_dir

LLM = get_rules().llm_method
T = LLM["thresholds"]
SHARED = {"teacher_access": "logits", "same_tokenizer": True}


def ask(**inputs):
    return recommend_method(RecommendMethodRequest(task_type="generation", **inputs))


@pytest.mark.parametrize(
    "inputs, method, branch",
    [
        ({"teacher_access": "outputs_only"}, "sequence_kd", "outputs_only"),
        ({"teacher_access": "outputs_only", "same_tokenizer": True, "compression_ratio": 50}, "sequence_kd", "outputs_only"),
        ({"teacher_access": "logits", "same_tokenizer": False}, "sequence_kd", "tokenizer_mismatch"),
        ({"teacher_access": "logits", "same_tokenizer": False, "open_ended_generation": True, "on_policy_affordable": True}, "sequence_kd", "tokenizer_mismatch"),
        ({**SHARED, "on_policy_affordable": False, "open_ended_generation": True}, "token_kd", "off_policy_only"),
        ({**SHARED, "compression_ratio": T["on_policy_compression_above"] + 0.5}, "on_policy_kd", "on_policy"),
        ({**SHARED, "teacher_params": 70_000_000_000, "student_params": 8_000_000_000, "open_ended_generation": True}, "on_policy_kd", "on_policy"),
        ({**SHARED, "compression_ratio": T["on_policy_compression_above"]}, "token_kd", "token_level"),  # exactly at the threshold: not above
        ({**SHARED, "compression_ratio": 2, "open_ended_generation": False, "on_policy_affordable": True}, "token_kd", "token_level"),
        ({**SHARED}, "token_kd", "token_level"),
        ({}, "sequence_kd", "safe_default"),
        ({"teacher_access": "logits"}, "sequence_kd", "safe_default"),  # tokenizer not confirmed: never token-level
        ({"same_tokenizer": True, "open_ended_generation": True}, "sequence_kd", "safe_default"),  # logits not confirmed
    ],
)
def test_generation_tree(inputs, method, branch):
    answer = ask(**inputs)
    assert answer.method.id == method
    expected = next(b for b in LLM["tree"] if b["id"] == branch)
    assert answer.method.reason == expected["reason"].format(**T)
    assert answer.method.hyperparameters["default_temperature"] == 1


def _combinations():
    values = {
        "teacher_access": [None, "logits", "outputs_only"],
        "same_tokenizer": [None, True, False],
        "on_policy_affordable": [None, True, False],
        "open_ended_generation": [None, True, False],
        "compression_ratio": [None, 4, 15, 40],
        "num_teachers": [None, 1, 3],
    }
    for combo in itertools.product(*values.values()):
        yield {k: v for k, v in zip(values, combo) if v is not None}


def test_token_level_only_with_logits_and_one_tokenizer_and_never_self_distillation():
    seen = set()
    for inputs in _combinations():
        answer = ask(**inputs)
        seen.add(answer.method.id)
        if answer.method.id in ("token_kd", "on_policy_kd"):
            assert inputs.get("teacher_access") == "logits" and inputs.get("same_tokenizer") is True, inputs
        assert answer.topology.id in ("hierarchical", "ensemble"), inputs
        texts = [answer.method.reason, *(w.message for w in answer.warnings), *(m.effect for m in answer.missing_inputs)]
        assert not any("{" in t or "}" in t for t in texts), inputs  # every template value filled
        assert len({m.field for m in answer.missing_inputs}) == len(answer.missing_inputs)
    assert seen == {"token_kd", "on_policy_kd", "sequence_kd"}


@pytest.mark.parametrize("num_teachers, topology", [(None, "hierarchical"), (1, "hierarchical"), (2, "ensemble")])
def test_generation_topology(num_teachers, topology):
    answer = ask(**SHARED, num_teachers=num_teachers)
    assert answer.topology.id == topology
    assert answer.topology.runner_topology == {"hierarchical": "teacher_student", "ensemble": "ensemble"}[topology]


def test_other_task_types_keep_the_classification_trees():
    answer = recommend_method(RecommendMethodRequest(task_type="classification", task_similarity=0.9, same_tokenizer=True))
    assert answer.method.id == "response" and answer.method.hyperparameters["default_temperature"] == 4
    assert recommend_method(RecommendMethodRequest(task_type="classification")).topology.id == "self"


@pytest.mark.parametrize("method", ["token_kd", "on_policy_kd", "sequence_kd", "draft_model_kd", "prune_then_distil", "reasoning_trace_kd"])
def test_every_generation_method_defaults_to_temperature_one(method):
    """T = 1 is the default loss temperature everywhere; the range is wider only where the trainer can change it."""
    hp = LLM["methods"][method]["hyperparameters"]
    low, high = hp["temperature_range"]
    assert hp["default_temperature"] == 1 and low <= 1 <= high
    if hp["export_trainer"] != "DistillationTrainer":  # GKDTrainer's loss and SFT's cross-entropy have no loss temperature
        assert (low, high) == (1, 1)


def test_trl_settings_follow_trls_beta_convention():
    """TRL: beta 0 is forward KL(teacher || student), 1 is reverse KL; lmbda is the on-policy fraction."""
    token = ask(**SHARED).method.hyperparameters
    assert token["trl_beta"] == 0 and token["trl_lmbda"] == 0 and token["trl_seq_kd"] is False
    on_policy = ask(**SHARED, open_ended_generation=True).method.hyperparameters
    assert on_policy["beta"] in on_policy["beta_choices"].values() and on_policy["lmbda"] == 1
    assert on_policy["beta_choices"] == {"forward_kl": 0.0, "jsd": 0.5, "reverse_kl": 1.0}
    assert on_policy["sampling_temperature"] == 1.0


# ---- warnings, each with its numbers ------------------------------------------------------


def _warning(answer, warning_id):
    return next(w.message for w in answer.warnings if w.id == warning_id)


def test_classification_temperature_on_a_generative_model():
    message = _warning(ask(**SHARED, planned_temperature=4), "classification_temperature_on_generation")
    assert "4.0" in message and "T = 1" in message and "sampling temperature" in message
    assert "classification_temperature_on_generation" not in {w.id for w in ask(**SHARED, planned_temperature=1).warnings}


def test_tokenizer_mismatch_warning_names_the_trl_issues():
    message = _warning(ask(teacher_access="logits", same_tokenizer=False), "tokenizer_mismatch")
    assert "3028" in message and "4562" in message and "sequence-level" in message
    assert "tokenizer_mismatch" not in {w.id for w in ask(**SHARED).warnings}


def test_logit_storage_numbers_full_versus_top_k():
    tokens, vocab = 1_000_000_000, 128_256
    answer = ask(**SHARED, dataset_tokens=tokens, vocab_size=vocab)
    message = _warning(answer, "teacher_logit_storage")
    # computed here by hand: fp16 2 bytes per vocabulary entry; top-64 as int32 index + fp16 value
    assert "256,512 bytes per token in fp16 (256.5 TB)" in message
    assert "513,024 in fp32 (513.0 TB)" in message
    assert "top 64" in message and "384 bytes (384.0 GB)" in message
    storage = answer.method.hyperparameters["teacher_logit_storage"]
    assert storage["full_fp16_bytes"] == tokens * vocab * 2 and storage["topk_bytes"] == tokens * 64 * 6
    assert storage == logit_storage(tokens, vocab)


def test_logit_storage_warning_threshold_and_scope():
    # 390,000 tokens x 128,256 x 2 bytes = 100.04 GB, just above the 100 GB threshold; 389,000 is below
    limit = T["logit_storage_warn_above_gb"] * 1e9
    above, below = int(limit / (128_256 * 2)) + 1, int(limit / (128_256 * 2)) - 1
    assert "teacher_logit_storage" in {w.id for w in ask(**SHARED, dataset_tokens=above, vocab_size=128_256).warnings}
    quiet = ask(**SHARED, dataset_tokens=below, vocab_size=128_256)
    assert "teacher_logit_storage" not in {w.id for w in quiet.warnings}
    assert quiet.method.hyperparameters["teacher_logit_storage"]["dataset_tokens"] == below  # still sized
    # it applies wherever the teacher's logits could be stored (not on-policy: nothing is stored there) ...
    for inputs in ({**SHARED, "on_policy_affordable": False}, {}, {"teacher_access": "logits"}):
        answer = ask(**inputs, dataset_tokens=above, vocab_size=128_256)
        assert "teacher_logit_storage" in {w.id for w in answer.warnings}, inputs
        assert answer.method.hyperparameters["teacher_logit_storage"]["dataset_tokens"] == above
    # ... and not where there are no logits to store: a text-only teacher, or two tokenizers
    for inputs in ({"teacher_access": "outputs_only"}, {"teacher_access": "logits", "same_tokenizer": False}):
        answer = ask(**inputs, dataset_tokens=10**12, vocab_size=128_256)
        assert "teacher_logit_storage" not in {w.id for w in answer.warnings} and "teacher_logit_storage" not in answer.method.hyperparameters


def test_token_kd_without_sizes_asks_for_them():
    fields = {m.field for m in ask(**SHARED).missing_inputs}
    assert {"dataset_tokens", "vocab_size"} <= fields


def test_teacher_choice_is_advice_by_loss_not_a_ratio_warning():
    """The unsourced 20x warning is gone; token-level answers carry how to choose the teacher instead."""
    for inputs in ({**SHARED, "compression_ratio": 50}, {**SHARED, "compression_ratio": 50, "on_policy_affordable": False}):
        answer = ask(**inputs)
        assert "large_capacity_gap" not in {w.id for w in answer.warnings}
        assert "validation loss" in answer.method.hyperparameters["teacher_choice"]


def test_on_policy_unaffordable_warning():
    answer = ask(**SHARED, on_policy_affordable=False, compression_ratio=15)
    assert answer.method.id == "token_kd"
    assert "exposure bias" in _warning(answer, "on_policy_unaffordable")
    assert "on_policy_unaffordable" not in {w.id for w in ask(**SHARED, on_policy_affordable=False, compression_ratio=3).warnings}


def test_trace_shows_the_threshold_read_from_the_rules():
    answer = ask(**SHARED, compression_ratio=12)
    entry = next(t for t in answer.rule_trace if t.rule == "llm_method.on_policy" and t.field == "compression_ratio")
    assert entry.threshold == T["on_policy_compression_above"] and entry.result == "true"


def test_next_steps_point_at_the_trl_export():
    assert ask(**SHARED).next_steps[0].tool == "kd_export_recipe"


# ---- three realistic requests ---------------------------------------------------------------


def test_realistic_requests():
    chatbot = ask(teacher_params=70_000_000_000, student_params=8_000_000_000, same_tokenizer=True, teacher_access="logits",
                  open_ended_generation=True, on_policy_affordable=True)
    assert (chatbot.method.id, chatbot.topology.id) == ("on_policy_kd", "hierarchical")
    assert {w.id for w in chatbot.warnings} == {"teacher_beyond_one_gpu"}  # 140 GB of bf16 weights
    api = ask(teacher_access="outputs_only", student_params=8_000_000_000, teacher_params=400_000_000_000)
    assert api.method.id == "sequence_kd" and api.warnings == []
    cross = ask(teacher_access="logits", same_tokenizer=False, teacher_params=70_000_000_000, student_params=7_000_000_000)
    assert cross.method.id == "sequence_kd" and "GOLD" in cross.method.hyperparameters["cross_tokenizer_methods"]


# ---- inputs, rule file, CLI, route ----------------------------------------------------------


@pytest.mark.parametrize(
    "inputs, field",
    [
        ({"teacher_access": "api"}, "teacher_access"),
        ({"same_tokenizer": "maybe"}, "same_tokenizer"),
        ({"vocab_size": 1}, "vocab_size"),
        ({"dataset_tokens": 0}, "dataset_tokens"),
        ({"dataset_tokens": 10**16}, "dataset_tokens"),
    ],
)
def test_bad_generation_inputs_are_refused(inputs, field):
    with pytest.raises(ValueError, match=field):
        RecommendMethodRequest.model_validate({"task_type": "generation", **inputs})


def test_broken_llm_rule_file_is_rejected_with_file_and_path(tmp_path: Path):
    folder = tmp_path / "rules"
    shutil.copytree(rules_dir(), folder)
    text = (folder / "llm_method.yaml").read_text()
    (folder / "llm_method.yaml").write_text(text.replace("method: token_kd\n", "method: logit_kd\n", 1))
    with pytest.raises(RuleFileError, match=r"llm_method.yaml: at tree/\d+/method"):
        load_rules_from(folder)


def test_mcp_answers_for_generation():
    """The real SDK client: the new fields are in the tool's schema and the answer matches the library."""
    arguments = {"task_type": "generation", "teacher_access": "logits", "same_tokenizer": True, "dataset_tokens": 10**9, "vocab_size": 128_256}

    async def go():
        async with Client(build_server()) as client:
            good = await client.call_tool("kd_recommend_method", arguments)
            bad = await client.call_tool("kd_recommend_method", {**arguments, "teacher_access": "api"})
            return good, bad

    good, bad = anyio.run(go)
    assert not good.is_error
    data = good.structured_content
    assert data["method"]["id"] == "token_kd" and data["method"]["hyperparameters"]["default_temperature"] == 1
    assert data["method"]["hyperparameters"]["teacher_logit_storage"]["topk_bytes"] == 10**9 * 384
    assert data == ask(**{k: v for k, v in arguments.items() if k != "task_type"}).model_dump(mode="json")
    assert bad.is_error and "teacher_access" in "".join(getattr(c, "text", "") for c in bad.content)


def test_cli_answers_for_generation():
    cmd = [sys.executable, "-m", "skill", "recommend", "--task-type", "generation", "--teacher-access", "outputs_only"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["method"]["id"] == "sequence_kd"
    bad = subprocess.run([*cmd[:-1], "api"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "teacher_access" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "text, verdict, skill",
    [
        ("Distil our 70B model into an 8B one for the chatbot", "in_scope", None),
        ("Make our Llama 3 70B smaller for the chatbot", "in_scope", None),
        ("Train a small LLM on GPT-4 outputs", "in_scope", None),
        ("Fine-tune Llama 8B on responses from a larger model", "in_scope", None),
        ("Quantize our 70B LLM to 4-bit and serve it with vLLM", "delegate", "model-deployment-optimization"),
        ("Quantize our LLM to int4 for serving", "delegate", "model-deployment-optimization"),
    ],
)
def test_llm_requests_route(text, verdict, skill):
    answer = route_request(RouteRequest(request=text))
    assert (answer.verdict, answer.skill) == (verdict, skill)


def test_llm_design_numbers_live_in_the_rules():
    """The numbers DESIGN.md section 8 and the issue ask for; changing one in the rules must fail here."""
    assert [b["id"] for b in LLM["tree"]] == ["regression_head", "classification_head", "reasoning_traces", "draft_model", "outputs_only", "tokenizer_mismatch",
                                              "prune_then_distil", "pretraining_from_scratch", "off_policy_only", "on_policy", "token_level",
                                              "safe_default"]
    assert LLM["task_types"] == ("generation",)
    assert dict(T) == {"on_policy_compression_above": 10, "logit_storage_warn_above_gb": 100, "beta_endpoint_margin": 0.05,
                       "loss_temperature_warn_above": 2, "vocab_padding_rows_at_most": 1024, "planned_temperature_max": 50}
    assert (S := LLM["logit_storage"])["top_k"] == 64 and (S["index_bytes"], S["value_bytes"]) == (4, 2)
    assert {m: LLM["methods"][m]["hyperparameters"]["default_temperature"] for m in LLM["methods"]} == dict.fromkeys(LLM["methods"], 1)
    assert next(w for w in LLM["warnings"] if w["id"] == "classification_temperature_on_generation")["when"]["all"][0] == {"field": "planned_temperature", "op": "gt", "value_field": "loss_temperature_warn_above"}
