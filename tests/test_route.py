"""Routing: in scope, a sibling skill, or a not-for boundary; and whether the sibling is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from skill.models import RouteRequest
from skill.route import route_request
from skill.rules import get_rules


@pytest.mark.parametrize(
    "text, kwargs, verdict, target",
    [
        ("Shrink my 800 MB BERT to fit a phone", {}, "in_scope", None),
        ("Why is my distilled model worse on rare classes?", {}, "in_scope", None),
        ("Which distillation temperature should I use?", {}, "in_scope", None),
        ("Quantize my model to int8 and export it to TensorRT", {}, "delegate", "model-deployment-optimization"),
        ("Run a neural architecture search for the best architecture search space", {}, "delegate", "neural-architecture-search"),
        ("Explain the model's predictions with SHAP", {}, "delegate", "explainable-ai-design"),
        ("Set up federated training across devices", {}, "delegate", "distributed-learning-coordination"),
        ("Make it robust to attacks, PGD and FGSM", {}, "delegate", "adversarial-defense-strategies"),
        ("I need an interpretable model for the regulator", {}, "delegate", "interpretable-models"),
        ("compress my detector", {"latency_budget_ms": 5}, "delegate", "hardware-acceleration"),
        ("compress my detector", {"latency_budget_ms": 10}, "in_scope", None),  # exactly 10 ms is not under 10
        ("distil my rule engine", {"model_params": 500}, "out_of_scope", None),
        ("distil my rule engine", {"model_params": 1000}, "in_scope", None),
        ("It's just a prototype, should I distill it?", {}, "out_of_scope", None),
        ("Bake a sourdough loaf", {}, "out_of_scope", None),
    ],
)
def test_routing_table(text, kwargs, verdict, target):
    answer = route_request(RouteRequest(request=text, **kwargs))
    assert answer.verdict == verdict, answer.reason
    assert answer.skill == target
    if verdict == "delegate":
        assert answer.fallback and answer.installed is False


def test_distill_request_keeps_scope_but_lists_the_sibling():
    answer = route_request(RouteRequest(request="Distill BERT, then quantize to int8 for the phone"))
    assert answer.verdict == "in_scope"
    assert [d.skill for d in answer.delegations] == ["model-deployment-optimization"]
    assert answer.delegations[0].fallback


def test_installed_sibling_is_found(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    skill_md = tmp_path / ".claude" / "skills" / "model-deployment-optimization" / "SKILL.md"
    skill_md.parent.mkdir(parents=True)
    skill_md.write_text("---\nname: model-deployment-optimization\n---\n")
    answer = route_request(RouteRequest(request="quantize to int8 with onnx"))
    assert answer.installed is True
    assert Path(answer.installed_path).resolve() == skill_md.resolve()


def test_home_skills_folder_is_searched(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    skill_md = tmp_path / ".agents" / "skills" / "explainable-ai-design" / "SKILL.md"
    skill_md.parent.mkdir(parents=True)
    skill_md.write_text("x")
    assert route_request(RouteRequest(request="explain the model with SHAP")).installed is True


def test_every_sibling_has_a_fallback_and_the_request_is_bounded():
    assert all(s["fallback"] for s in get_rules().boundaries["siblings"])
    with pytest.raises(ValueError, match="request"):
        RouteRequest(request="x" * 4001)
