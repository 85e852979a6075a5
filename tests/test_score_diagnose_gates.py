"""Distillation score, the five failure modes and the ten gates, each against hand-worked numbers."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from skill.diagnose import diagnose_failure
from skill.errors import InputError
from skill.gates import check_quality_gates
from skill.metrics import expected_calibration_error
from skill.models import DiagnoseFailureRequest, QualityGatesRequest, ScoreDistillationRequest
from skill.score import score_distillation


def test_score_terms_by_hand():
    answer = score_distillation(ScoreDistillationRequest(alpha=0.5, teacher_size=100, teacher_accuracy=0.8, student_size=20, student_accuracy=0.6))
    assert answer.size_term == pytest.approx(0.1)
    assert answer.accuracy_term == pytest.approx(0.125)
    assert answer.score == pytest.approx(0.225)


def test_score_is_negative_when_student_beats_teacher():
    answer = score_distillation(ScoreDistillationRequest(alpha=0.0, teacher_size=10, teacher_accuracy=0.8, student_size=5, student_accuracy=0.9))
    assert answer.score < 0 and "negative" in answer.interpretation


def test_candidates_are_ranked_best_first():
    answer = score_distillation(
        ScoreDistillationRequest(
            alpha=0.7, teacher_size=800, teacher_accuracy=0.95,
            candidates=[{"name": "big", "size": 200, "accuracy": 0.94}, {"name": "tiny", "size": 50, "accuracy": 0.912}, {"name": "mid", "size": 100, "accuracy": 0.93}],
        )
    )
    assert [c.name for c in answer.ranking] == ["tiny", "mid", "big"]
    assert [c.rank for c in answer.ranking] == [1, 2, 3]
    assert answer.score == answer.ranking[0].score


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"alpha": 0.7, "teacher_size": 800, "teacher_accuracy": 95, "student_size": 50, "student_accuracy": 0.9}, "looks like a percentage"),
        ({"alpha": 1.5, "teacher_size": 800, "teacher_accuracy": 0.95, "student_size": 50, "student_accuracy": 0.9}, "alpha"),
        ({"alpha": 0.7, "teacher_size": 0, "teacher_accuracy": 0.95, "student_size": 50, "student_accuracy": 0.9}, "teacher_size"),
        ({"alpha": 0.7, "teacher_size": 800, "teacher_accuracy": 0.95}, "missing student"),
        ({"alpha": 0.7, "teacher_size": 800, "teacher_accuracy": 0.95, "student_size": 50}, "go together"),
        ({"alpha": 0.7, "teacher_size": 800, "teacher_accuracy": 0.0, "student_size": 50, "student_accuracy": 0.5}, "divides"),
        ({"alpha": 0.7, "teacher_size": 800, "teacher_accuracy": 0.9, "candidates": [{"name": f"c{i}", "size": 1, "accuracy": 0.5} for i in range(101)]}, "candidates"),
    ],
)
def test_score_refuses_bad_input(payload, message):
    with pytest.raises(ValidationError, match=message):
        ScoreDistillationRequest.model_validate(payload)


def _status(answer, mode):
    return next(f for f in answer.findings if f.id == mode).status


@pytest.mark.parametrize(
    "per_class, support, overall, expected",
    [
        ({"a": 0.95, "b": 0.74}, None, None, "detected"),  # spread 0.21 > 0.20
        ({"a": 0.95, "b": 0.75}, None, None, "clear"),  # spread 0.20 exactly: not above
        ({"a": 0.95, "b": 0.93, "rare": 0.80}, {"a": 100, "b": 100, "rare": 5}, 0.94, "clear"),  # 0.80 >= 0.7*0.94
        ({"a": 0.95, "b": 0.93, "rare": 0.60}, {"a": 100, "b": 100, "rare": 5}, 0.94, "detected"),
        # minority by support is the rare class, even if not the weakest: 0.41 < 0.7 * 0.6 with a spread of exactly 0.20
        # (an overall accuracy above every class, as this row once had, is now refused as inconsistent)
        ({"a": 0.60, "b": 0.40, "rare": 0.41}, {"a": 100, "b": 50, "rare": 5}, 0.6, "detected"),
    ],
)
def test_accuracy_mirage(per_class, support, overall, expected):
    answer = diagnose_failure(DiagnoseFailureRequest(per_class_accuracy=per_class, class_support=support, overall_accuracy=overall))
    assert _status(answer, "accuracy_mirage") == expected


@pytest.mark.parametrize(
    "student, teacher, expected",
    [(0.9, 0.7, "detected"), (0.7, 0.7, "clear"), (0.6, 0.8, "clear")],
)
def test_temperature_blindness_from_confidences(student, teacher, expected):
    answer = diagnose_failure(DiagnoseFailureRequest(student_error_confidence=student, teacher_error_confidence=teacher))
    assert _status(answer, "temperature_blindness") == expected


def test_training_at_t1_alone_is_a_warning_not_a_verdict():
    answer = diagnose_failure(DiagnoseFailureRequest(training_temperature=1))
    assert _status(answer, "temperature_blindness") == "not_evaluated"
    assert [w.id for w in answer.warnings] == ["trained_at_t1"]


@pytest.mark.parametrize(
    "curve, expected",
    [
        ([(1000, 0.90), (950, 0.84)], "detected"),  # 5% fewer params, 6 points lost
        ([(1000, 0.90), (900, 0.80)], "not_evaluated"),  # exactly 10% fewer is not below 10%: no pair to judge
        ([(1000, 0.90), (900, 0.80), (880, 0.80)], "clear"),  # 900 -> 880 is close enough, and no drop there
        ([(1000, 0.90), (950, 0.85)], "clear"),  # exactly 0.05 drop is not above
        ([(500, 0.80), (1000, 0.90), (480, 0.70)], "detected"),  # order of points does not matter
        ([(1000, 0.9)], "not_evaluated"),
    ],
)
def test_capacity_cliff(curve, expected):
    points = [{"params": p, "accuracy": a} for p, a in curve]
    assert _status(diagnose_failure(DiagnoseFailureRequest(size_accuracy_curve=points)), "capacity_cliff") == expected


@pytest.mark.parametrize(
    "finds, feedback, expected",
    [(True, False, "detected"), (True, True, "clear"), (False, None, "clear"), (True, None, "not_evaluated"), (None, None, "not_evaluated")],
)
def test_hierarchical_rigidity(finds, feedback, expected):
    answer = diagnose_failure(DiagnoseFailureRequest(student_finds_edge_cases=finds, feedback_to_teacher=feedback))
    assert _status(answer, "hierarchical_rigidity") == expected


@pytest.mark.parametrize(
    "teacher, student, expected",
    [(0.9, 0.80, "detected"), (0.9, 0.81, "clear"), (1.0, 0.95, "clear"), (0.0, 0.0, "not_evaluated")],
)
def test_bias_amplification(teacher, student, expected):
    answer = diagnose_failure(DiagnoseFailureRequest(teacher_parity_ratio=teacher, student_parity_ratio=student))
    assert _status(answer, "bias_amplification") == expected


def test_nothing_given_means_nothing_evaluated():
    answer = diagnose_failure(DiagnoseFailureRequest())
    assert {f.status for f in answer.findings} == {"not_evaluated"}
    assert len(answer.findings) == 5 and answer.detected == []


def test_ece_by_hand():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    # bins: conf 0.9 (2 samples, both correct) -> |1-0.9|*0.5 ; 0.6 (wrong) -> |0-0.6|*0.25 ; 0.7 (right) -> |1-0.7|*0.25
    assert expected_calibration_error(labels, probs, bins=15) == pytest.approx(0.05 + 0.15 + 0.075)


def test_raw_arrays_compute_metrics_and_detect_overconfidence():
    rng = np.random.default_rng(0)
    n = 1000
    labels = rng.integers(0, 3, n)
    # teacher: calibrated, 80% sure and right 80% of the time
    teacher_wrong = rng.random(n) < 0.2
    teacher_pred = np.where(teacher_wrong, (labels + 1) % 3, labels)
    teacher = np.full((n, 3), 0.1)
    teacher[np.arange(n), teacher_pred] = 0.8
    # student: 98% sure but right only about 70% of the time
    wrong = rng.random(n) < 0.3
    student_pred = np.where(wrong, (labels + 1) % 3, labels)
    student = np.full((n, 3), 0.01)
    student[np.arange(n), student_pred] = 0.98
    answer = diagnose_failure(
        DiagnoseFailureRequest(labels=labels.tolist(), student_probs=student.tolist(), teacher_probs=teacher.tolist())
    )
    m = answer.metrics
    assert m.overall_accuracy == pytest.approx(1 - wrong.mean())
    assert m.teacher_accuracy == pytest.approx(1 - teacher_wrong.mean())
    assert m.student_error_confidence == pytest.approx(0.98) and m.teacher_error_confidence == pytest.approx(0.8)
    assert m.student_ece == pytest.approx(0.98 - m.overall_accuracy)
    assert m.teacher_ece < 0.05
    assert _status(answer, "temperature_blindness") == "detected"
    assert "Over-confident" in next(f for f in answer.findings if f.id == "temperature_blindness").diagnosis


def test_raw_arrays_detect_over_smoothing_too():
    labels = np.array([0, 1] * 200)
    teacher = np.eye(2)[labels] * 0.9 + 0.05
    student = np.eye(2)[labels] * 0.1 + 0.45  # right every time but only 55% sure: under-confident
    answer = diagnose_failure(DiagnoseFailureRequest(labels=labels.tolist(), student_probs=student.tolist(), teacher_probs=teacher.tolist()))
    finding = next(f for f in answer.findings if f.id == "temperature_blindness")
    assert finding.status == "detected" and "too high" in finding.diagnosis


def test_raw_parity_from_groups():
    """Groups of 40 rows (above min_group_support): group b never gets the positive outcome, beyond noise. The same
    pattern on 4-row groups is not evaluated (failure_modes.yaml statistics), never a verdict on a handful of rows."""
    for repeat, status in ((10, "detected"), (1, "not_evaluated")):
        labels = [1, 1, 0, 0, 1, 1, 0, 0] * repeat
        groups = ["a", "a", "a", "a", "b", "b", "b", "b"] * repeat
        teacher = np.eye(2)[labels].tolist()
        student_pred = [1, 1, 0, 0, 0, 0, 0, 0] * repeat  # group b never gets the positive outcome
        student = np.eye(2)[student_pred].tolist()
        answer = diagnose_failure(DiagnoseFailureRequest(labels=labels, student_probs=student, teacher_probs=teacher, groups=groups))
        assert answer.metrics.teacher_parity_ratio == 1.0
        assert answer.metrics.student_parity_ratio == 0.0  # group b's rate 0 over group a's 0.5
        finding = next(f for f in answer.findings if f.id == "bias_amplification")
        assert finding.status == status, finding.diagnosis
        assert finding.source and "Wilson" in finding.source


@pytest.mark.parametrize(
    "payload, field, message",
    [
        ({"labels": [0, 1], "student_probs": [[0.5, 0.5]]}, "student_probs", "rows"),
        ({"labels": [0, 2], "student_probs": [[0.5, 0.5], [0.5, 0.5]]}, "labels", "0..1"),
        ({"labels": [0, 1], "student_probs": [[2.0, -1.0], [0.5, 0.5]]}, "student_probs", "logits"),
        ({"labels": [0, 1], "student_probs": [[0.5, 0.5], [0.5, 0.5]], "teacher_probs": [[1.0, 0, 0], [1.0, 0, 0]]}, "teacher_probs", "columns"),
        ({"labels": [0] * 20001, "student_probs": [[1.0, 0.0]] * 20001}, "labels", "summarise"),
        ({"labels": [0, 1]}, "student_probs", "both"),
    ],
)
def test_raw_input_errors_name_the_field(payload, field, message):
    with pytest.raises(InputError) as err:
        diagnose_failure(DiagnoseFailureRequest(**payload))
    assert err.value.field == field and message in str(err.value)


def test_gates_pass_fail_unknown():
    everything = dict(
        alpha=0.7, alpha_reason="phone app, size first", distillation_score=0.056, stratified_validation=True, per_class_thresholds_met=True,
        temperature=4, temperature_tuned=True, calibration_validated=True, capacity_analysis_done=True, bias_monitoring=True,
        edge_case_monitoring=True, robustness_suite=True, compression_ratio=16, cascade_evaluated=True, multi_agent=False,
        latency_ms=150, latency_budget_ms=200, memory_mb=50, memory_budget_mb=50, accuracy=0.912, accuracy_target=0.9,
        rollback_plan=True, degradation_alerts=True,
    )
    answer = check_quality_gates(QualityGatesRequest(**everything))
    assert (answer.passed, answer.failed, answer.unknown, answer.ready_to_ship) == (10, 0, 0, True)

    worse = everything | {"temperature": 1, "latency_ms": 250, "cascade_evaluated": False}
    answer = check_quality_gates(QualityGatesRequest(**worse))
    failed = {g.id for g in answer.gates if g.status == "fail"}
    assert failed == {"temperature_and_calibration", "budgets_met", "cascade_evaluated"}

    low_compression = everything | {"compression_ratio": 5, "cascade_evaluated": None}
    gate = next(g for g in check_quality_gates(QualityGatesRequest(**low_compression)).gates if g.id == "cascade_evaluated")
    assert gate.status == "pass" and "applicable" in gate.reason  # exactly 5x: not above 5

    empty = check_quality_gates(QualityGatesRequest())
    assert empty.unknown == 10 and all(g.missing for g in empty.gates)


def test_multi_agent_gate_needs_coordination():
    answer = check_quality_gates(QualityGatesRequest(multi_agent=True, coordination_pattern="", feedback_loops=True))
    assert next(g for g in answer.gates if g.id == "multi_agent_coordination").status == "fail"


def test_every_gate_answers_with_its_source():
    """Issue 21 asks for the gates 'with their sources': each gate in quality_gates.yaml names where it comes from
    (the guidance, or the paper behind it), and the answer carries it; none reads 'unsourced'."""
    gates = check_quality_gates(QualityGatesRequest()).gates
    assert len(gates) == 10
    for gate in gates:
        assert gate.source and "unsourced" not in gate.source, (gate.id, gate.source)
    by_id = {g.id: g.source for g in gates}
    assert "Guo et al. 2017" in by_id["temperature_and_calibration"] and "Hooker et al. 2020" in by_id["bias_monitoring"]
