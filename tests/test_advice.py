"""Case tables for every branch of the method, topology and alpha trees, boundaries included."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from skill.alpha import choose_alpha
from skill.models import ChooseAlphaRequest, RecommendMethodRequest
from skill.recommend import recommend_method


@pytest.mark.parametrize(
    "inputs, method",
    [
        ({"task_similarity": 0.81}, "response"),
        ({"task_similarity": 0.8}, "relation"),  # exactly 0.8 is not above 0.8
        ({"task_similarity": 0.8, "abstraction_level": "high"}, "feature"),
        ({"task_similarity": 0.95, "abstraction_level": "high"}, "response"),  # order: similarity first
        ({"abstraction_level": "medium", "compression_ratio": 10}, "relation"),  # exactly 10 is not above 10
        ({"abstraction_level": "medium", "compression_ratio": 10.5}, "cascade"),
        ({"teacher_params": 1100, "student_params": 100}, "cascade"),  # ratio from params
        ({"abstraction_level": "low", "compression_ratio": 4}, "relation"),
        ({}, "relation"),
    ],
)
def test_method_tree(inputs, method):
    assert recommend_method(RecommendMethodRequest(task_type="classification", **inputs)).method.id == method


@pytest.mark.parametrize(
    "inputs, topology",
    [
        ({"environment_stability": "static", "task_distribution_known": True}, "hierarchical"),
        ({"environment_stability": "static", "task_distribution_known": False, "num_teachers": 3}, "ensemble"),
        ({"environment_stability": "dynamic", "num_teachers": 2}, "ensemble"),
        ({"environment_stability": "static", "task_distribution_known": True, "num_teachers": 5}, "hierarchical"),
        ({"num_teachers": 1, "need_continuous_adaptation": True}, "online"),
        ({"num_teachers": 1, "need_continuous_adaptation": False}, "self"),
    ],
)
def test_topology_tree(inputs, topology):
    answer = recommend_method(RecommendMethodRequest(task_type="classification", **inputs))
    assert answer.topology.id == topology
    assert answer.topology.runner_topology in {"teacher_student", "ensemble", "online", "self"}


def test_missing_inputs_say_what_they_would_change():
    answer = recommend_method(RecommendMethodRequest(task_type="classification"))
    fields = {m.field for m in answer.missing_inputs}
    assert {"task_similarity", "abstraction_level", "compression_ratio", "num_teachers"} <= fields
    assert all(m.effect for m in answer.missing_inputs)
    # the trace shows each unknown comparison
    assert any(t.field == "task_similarity" and t.result == "unknown" and t.threshold == 0.8 for t in answer.rule_trace)


@pytest.mark.parametrize(
    "task, compression, expected",
    [
        ("classification", None, [3, 6]),
        ("regression", None, [1, 3]),
        ("generation", None, [1, 1]),  # language models: token-level KD at T = 1 (llm_method.yaml)
        ("classification", 16, [3, 4]),  # small student: narrowed to Hinton's band
        ("regression", 16, [2.5, 3]),
    ],
)
def test_temperature_range(task, compression, expected):
    answer = recommend_method(RecommendMethodRequest(task_type=task, task_similarity=0.9, compression_ratio=compression))
    assert answer.method.hyperparameters["temperature_range"] == expected


@pytest.mark.parametrize(
    "inputs, warning",
    [
        ({"task_similarity": 0.9, "compression_ratio": 12}, "response_at_high_compression"),
        ({"task_similarity": 0.9, "compression_ratio": 12}, "small_student_high_temperature"),
        ({"abstraction_level": "high", "same_architecture_family": False}, "feature_across_families"),
        ({"abstraction_level": "high", "compression_ratio": 20}, "feature_past_90_percent"),
        ({"compression_ratio": 20, "planned_temperature": 8}, "planned_temperature_too_high_for_small_student"),
    ],
)
def test_risk_warnings_fire(inputs, warning):
    answer = recommend_method(RecommendMethodRequest(task_type="classification", **inputs))
    assert warning in {w.id for w in answer.warnings}


@pytest.mark.parametrize(
    "inputs",
    [
        {"task_similarity": 0.9, "compression_ratio": 10},
        {"abstraction_level": "high", "same_architecture_family": True, "compression_ratio": 8},
        {"compression_ratio": 20, "planned_temperature": 4},
    ],
)
def test_no_warning_when_safe(inputs):
    assert recommend_method(RecommendMethodRequest(task_type="classification", **inputs)).warnings == []


def test_cross_family_warning_cites_crd_numbers():
    answer = recommend_method(RecommendMethodRequest(task_type="classification", abstraction_level="high", same_architecture_family=False))
    message = next(w.message for w in answer.warnings if w.id == "feature_across_families")
    assert "59.40" in message and "64.60" in message


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"task_similarity": 1.2}, "task_similarity"),
        ({"task_type": "poetry"}, "task_type"),
        ({"compression_ratio": 0.5}, "compression_ratio"),
        ({"teacher_params": 100, "student_params": 1000}, "larger than teacher_params"),
        ({"teacher_params": 100}, "go together"),
        ({"compression_ratio": 3, "teacher_params": 1000, "student_params": 100}, "disagrees"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_recommend_refuses_bad_input(inputs, message):
    with pytest.raises(ValidationError, match=message):
        RecommendMethodRequest.model_validate({"task_type": "classification", **inputs})


@pytest.mark.parametrize(
    "inputs, branch, alpha_range, alpha",
    [
        ({"deployment_environment": "mobile"}, "size_first", [0.6, 0.8], 0.7),
        ({"deployment_environment": "edge"}, "size_first", [0.6, 0.8], 0.7),
        ({"deployment_environment": "embedded", "application_domain": "medical"}, "size_first", [0.6, 0.8], 0.7),
        ({"deployment_environment": "server", "application_domain": "safety_critical"}, "accuracy_first", [0.1, 0.3], 0.2),
        ({"application_domain": "financial", "can_dynamically_route": True}, "accuracy_first", [0.1, 0.3], 0.2),
        ({"deployment_environment": "cloud", "application_domain": "general", "can_dynamically_route": True}, "dynamic_routing", [0.5, 0.5], 0.5),
        ({"deployment_environment": "desktop", "application_domain": "general", "can_dynamically_route": False}, "balanced", [0.4, 0.6], 0.5),
        ({}, "balanced", [0.4, 0.6], 0.5),
    ],
)
def test_alpha_tree(inputs, branch, alpha_range, alpha):
    answer = choose_alpha(ChooseAlphaRequest(**inputs))
    assert (answer.branch, answer.alpha_range, answer.alpha) == (branch, alpha_range, alpha)
    assert alpha_range[0] <= answer.alpha <= alpha_range[1]


def test_dynamic_routing_gives_a_checkpoint_ladder():
    answer = choose_alpha(ChooseAlphaRequest(deployment_environment="server", can_dynamically_route=True))
    assert answer.checkpoints and 0.5 in answer.checkpoints and len(answer.checkpoints) >= 3
    assert choose_alpha(ChooseAlphaRequest(deployment_environment="server")).checkpoints is None


@pytest.mark.parametrize("env", ["mobile", "edge", "embedded"])
@pytest.mark.parametrize("domain", ["safety_critical", "medical", "financial"])
def test_critical_domain_on_device_is_flagged(env, domain):
    answer = choose_alpha(ChooseAlphaRequest(deployment_environment=env, application_domain=domain))
    assert [w.id for w in answer.warnings] == ["critical_domain_on_small_device"]
    assert "cascade" in answer.warnings[0].message


def test_no_conflict_warning_on_server():
    assert choose_alpha(ChooseAlphaRequest(deployment_environment="server", application_domain="medical")).warnings == []


def test_language_model_inputs_with_another_task_type_are_not_ignored_in_silence():
    from skill.models import RecommendMethodRequest
    from skill.recommend import recommend_method

    mislabelled = recommend_method(RecommendMethodRequest(task_type="classification", task_similarity=0.95, same_tokenizer=True, vocab_size=32000))
    assert "generation_inputs_on_another_task" in {w.id for w in mislabelled.warnings}
    plain = recommend_method(RecommendMethodRequest(task_type="classification", task_similarity=0.95))
    assert "generation_inputs_on_another_task" not in {w.id for w in plain.warnings}
    assert not {"same_tokenizer", "vocab_size"} & {m.field for m in plain.missing_inputs}  # never asked of a classifier
