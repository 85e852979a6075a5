"""The three worked examples of the design, end to end through the library."""

from __future__ import annotations

import pytest

from skill.alpha import choose_alpha
from skill.models import ChooseAlphaRequest, RecommendMethodRequest, RouteRequest, ScoreDistillationRequest
from skill.recommend import recommend_method
from skill.routing import route_request
from skill.score import score_distillation


def test_mobile_sentiment():
    assert route_request(RouteRequest(request="Shrink my 800 MB BERT sentiment model to fit a phone, 50 MB budget")).verdict == "in_scope"
    alpha = choose_alpha(ChooseAlphaRequest(deployment_environment="mobile", application_domain="general"))
    assert alpha.alpha_range == [0.6, 0.8] and alpha.alpha == 0.7
    method = recommend_method(RecommendMethodRequest(task_type="classification", task_similarity=0.95, teacher_params=800, student_params=50))
    assert method.method.id == "response"
    low, high = method.method.hyperparameters["temperature_range"]
    assert low <= 4 <= high
    assert method.method.hyperparameters["inference_temperature"] == 1
    score = score_distillation(ScoreDistillationRequest(alpha=alpha.alpha, teacher_size=800, teacher_accuracy=0.95, student_size=50, student_accuracy=0.912))
    assert score.score == pytest.approx(0.0557, abs=1e-4)
    assert round(score.score, 3) == 0.056
    # 3.8 points lost for a 16x smaller model: the tool derives the 16x, the score's accuracy term the 4% relative loss
    assert method.compression_ratio == pytest.approx(16)
    assert score.accuracy_term == pytest.approx((1 - 0.7) * 0.038 / 0.95)


def test_vehicle_perception():
    alpha = choose_alpha(ChooseAlphaRequest(deployment_environment="other", application_domain="safety_critical"))
    assert alpha.alpha == 0.2 and alpha.alpha_range == [0.1, 0.3]
    # on an edge device the rule order gives size priority, and the conflict is flagged
    on_edge = choose_alpha(ChooseAlphaRequest(deployment_environment="edge", application_domain="safety_critical"))
    assert on_edge.warnings and "cascade" in on_edge.warnings[0].message
    answer = recommend_method(
        RecommendMethodRequest(task_type="detection", task_similarity=0.5, abstraction_level="high", num_teachers=3, environment_stability="dynamic")
    )
    assert answer.method.id == "feature"
    assert answer.topology.id == "ensemble"


def test_literature_agents():
    answer = recommend_method(
        RecommendMethodRequest(
            task_type="ranking", task_similarity=0.4, abstraction_level="medium", compression_ratio=3,
            environment_stability="dynamic", num_teachers=1, need_continuous_adaptation=True,
        )
    )
    assert answer.method.id == "relation"
    assert answer.topology.id == "online"
    alpha = choose_alpha(ChooseAlphaRequest(deployment_environment="cloud", application_domain="general", can_dynamically_route=True))
    assert alpha.alpha == 0.5 and alpha.checkpoints
