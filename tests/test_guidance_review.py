"""Wrong answers found by reviewing the advice against the guidance (issue 9, part 3), each reproduced first.

Every case here failed before its fix; the numbers come from the rule files, so a changed threshold moves
the case with it.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from skill.diagnose import diagnose_failure
from skill.errors import InputError
from skill.gates import check_quality_gates
from skill.models import DiagnoseFailureRequest, QualityGatesRequest, RecommendMethodRequest, ScoreDistillationRequest
from skill.recommend import recommend_method
from skill.rules import get_rules
from skill.score import score_distillation

R = get_rules()


def _finding(answer, mode):
    return next(f for f in answer.findings if f.id == mode)


# ---- capacity cliff: every pair of close sizes, seeds are spread ---------------------------


def _cliff(curve):
    points = [{"params": p, "accuracy": a} for p, a in curve]
    return _finding(diagnose_failure(DiagnoseFailureRequest(size_accuracy_curve=points)), "capacity_cliff")


def test_cliff_across_a_chain_of_small_steps():
    # each neighbouring step loses 0.03 (not a cliff), but 100 -> 92 is 8% fewer parameters for 0.06
    finding = _cliff([(100, 0.90), (96, 0.87), (92, 0.84)])
    assert finding.status == "detected"
    assert "100 -> 92" in finding.diagnosis


def test_cliff_pairs_further_than_ten_percent_are_not_compared():
    # 100 -> 89 is 11% fewer parameters: a 0.06 drop there is the price of compression, not a cliff
    assert _cliff([(100, 0.90), (95, 0.87), (89, 0.84)]).status == "clear"


def test_repeated_sizes_are_seed_spread_not_a_cliff():
    # three seeds at 100 params and three at 95: the means differ by 0.01; single runs differ by up to 0.08
    finding = _cliff([(100, 0.91), (100, 0.88), (100, 0.85), (95, 0.90), (95, 0.87), (95, 0.83)])
    assert finding.status == "clear"
    assert any("spread" in e.metric for e in finding.evidence)


def test_repeated_sizes_alone_are_not_evaluated_as_a_curve():
    assert _cliff([(100, 0.90), (100, 0.80)]).status == "not_evaluated"


def test_cliff_between_seed_means():
    finding = _cliff([(100, 0.90), (100, 0.92), (96, 0.84), (96, 0.84)])
    assert finding.status == "detected"  # means 0.91 and 0.84: 4% fewer parameters for 0.07


def test_large_curve_stays_fast_and_bounded():
    sizes = [1000 + i for i in range(1000)]
    finding = _cliff([(p, 0.9) for p in sizes])
    assert finding.status == "clear" and len(finding.evidence) <= len(sizes)


# ---- score and ranking: the accuracy floor, one alpha ----------------------------------------


def _rank(**kwargs):
    return score_distillation(ScoreDistillationRequest(**kwargs))


USELESS = {"name": "useless", "size": 1, "accuracy": 0.0}
GOOD = {"name": "good", "size": 80, "accuracy": 0.93}


def test_without_a_floor_a_useless_tiny_model_wins_but_is_flagged():
    answer = _rank(alpha=0.8, teacher_size=100, teacher_accuracy=0.95, candidates=[GOOD, USELESS])
    assert answer.ranking[0].name == "useless"  # the formula alone rewards size
    assert "min_student_accuracy" in {m.field for m in answer.missing_inputs}
    assert "low_accuracy_winner" in {w.id for w in answer.warnings}


def test_floor_ranks_candidates_below_it_last():
    answer = _rank(alpha=0.8, teacher_size=100, teacher_accuracy=0.95, min_student_accuracy=0.9, candidates=[USELESS, GOOD])
    assert [c.name for c in answer.ranking] == ["good", "useless"]
    assert [c.meets_accuracy_floor for c in answer.ranking] == [True, False]
    assert answer.score == answer.ranking[0].score and answer.ranking[0].name == "good"


def test_floor_keeps_score_order_among_those_that_meet_it():
    candidates = [{"name": "a", "size": 60, "accuracy": 0.91}, {"name": "b", "size": 30, "accuracy": 0.905}, {"name": "c", "size": 5, "accuracy": 0.5},
                  {"name": "d", "size": 2, "accuracy": 0.6}]
    answer = _rank(alpha=0.7, teacher_size=100, teacher_accuracy=0.95, min_student_accuracy=0.9, candidates=candidates)
    names = [c.name for c in answer.ranking]
    assert names[:2] == ["b", "a"] and set(names[2:]) == {"c", "d"}
    assert names[2:] == sorted(names[2:], key=lambda n: next(c.score for c in answer.ranking if c.name == n))


def test_no_candidate_meets_the_floor_is_said():
    answer = _rank(alpha=0.5, teacher_size=100, teacher_accuracy=0.95, min_student_accuracy=0.9, candidates=[USELESS])
    assert "below_accuracy_floor" in {w.id for w in answer.warnings}


def test_single_student_below_the_floor_is_marked():
    answer = _rank(alpha=0.7, teacher_size=800, teacher_accuracy=0.95, student_size=50, student_accuracy=0.88, min_student_accuracy=0.9)
    assert "below_accuracy_floor" in {w.id for w in answer.warnings}
    exact = _rank(alpha=0.7, teacher_size=800, teacher_accuracy=0.95, student_size=50, student_accuracy=0.9, min_student_accuracy=0.9)
    assert "below_accuracy_floor" not in {w.id for w in exact.warnings}  # the floor itself is met


def test_score_says_it_compares_only_at_one_alpha():
    answer = _rank(alpha=0.7, teacher_size=800, teacher_accuracy=0.95, student_size=50, student_accuracy=0.912)
    assert "alpha 0.7" in answer.interpretation and "same alpha" in answer.interpretation


def test_floor_is_a_fraction():
    with pytest.raises(ValidationError, match="percentage"):
        ScoreDistillationRequest(alpha=0.7, teacher_size=800, teacher_accuracy=0.95, student_size=50, student_accuracy=0.9, min_student_accuracy=90)


# ---- alpha that looks like a KD loss weight -------------------------------------------------

def _loss_weight_at() -> float:
    return next(w for w in R.score["warnings"] if w["id"] == "alpha_looks_like_loss_weight")["when"]["value"]


@pytest.mark.parametrize("alpha, fires", [(None, True), (0.9, True), (0.8, False)])
def test_high_alpha_warns_in_score_and_gates(alpha, fires):
    alpha = _loss_weight_at() if alpha is None else alpha  # None: exactly on the threshold
    score = _rank(alpha=alpha, teacher_size=800, teacher_accuracy=0.95, student_size=50, student_accuracy=0.912)
    gates = check_quality_gates(QualityGatesRequest(alpha=alpha, alpha_reason="copied from the training config"))
    for answer in (score, gates):
        assert ("alpha_looks_like_loss_weight" in {w.id for w in answer.warnings}) is fires


# ---- recommend: planned T <= 1 ---------------------------------------------------------------


@pytest.mark.parametrize("t, task, fires", [(1, "classification", True), (0.5, "detection", True), (1.5, "classification", False),
                                            (1, "regression", False), (1, "generation", False)])
def test_recommend_warns_on_planned_temperature_at_most_one(t, task, fires):
    answer = recommend_method(RecommendMethodRequest(task_type=task, task_similarity=0.9, planned_temperature=t))
    assert ("planned_temperature_too_low" in {w.id for w in answer.warnings}) is fires


def test_temperature_warning_threshold_matches_the_failure_mode():
    warning = next(w for w in R.method["warnings"] if w["id"] == "planned_temperature_too_low")
    leaves = [c for c in warning["when"]["all"] if c["field"] == "planned_temperature"]
    assert leaves[0]["op"] == "le"
    assert leaves[0]["value"] == R.failure_modes["modes"]["temperature_blindness"]["thresholds"]["max_training_temperature_at_risk"]


# ---- topology with its inputs missing --------------------------------------------------------


def test_teacher_student_pair_is_not_silently_self_distillation():
    answer = recommend_method(RecommendMethodRequest(task_type="classification", teacher_params=800, student_params=50))
    topology = answer.topology
    assert topology.assumed is True
    assert topology.id != "self"  # self-distillation keeps the size; a 16x smaller student has a teacher to learn from
    assert "Assumed" in topology.reason
    asked = " ".join(topology.questions)
    assert "environment" in asked and "teacher" in asked


def test_nothing_known_marks_the_topology_assumed_with_questions():
    answer = recommend_method(RecommendMethodRequest(task_type="classification"))
    assert answer.topology.assumed and len(answer.topology.questions) >= 3
    assert answer.method.assumed and answer.method.questions


def test_decided_topology_is_not_assumed():
    answer = recommend_method(RecommendMethodRequest(task_type="classification", environment_stability="static", task_distribution_known=True))
    assert answer.topology.id == "hierarchical" and answer.topology.assumed is False and answer.topology.questions == []


def test_all_inputs_given_self_distillation_for_a_smaller_student_is_warned():
    answer = recommend_method(RecommendMethodRequest(task_type="classification", compression_ratio=16, environment_stability="dynamic",
                                                     num_teachers=1, need_continuous_adaptation=False))
    assert answer.topology.id == "self" and answer.topology.assumed is False
    assert "self_distillation_keeps_size" in {w.id for w in answer.warnings}


def test_every_tree_field_has_a_question():
    from skill.conditions import condition_fields

    for rules in (R.method, R.topology):
        fields = {f for b in rules["tree"] if "when" in b for f in condition_fields(b["when"])} - {"compression_ratio"}
        assert fields <= set(rules["questions"]), fields - set(rules["questions"])


# ---- the guidance's own field names ----------------------------------------------------------


def test_guidance_abstraction_name_is_accepted():
    answer = recommend_method(RecommendMethodRequest.model_validate({"task_type": "classification", "abstraction_level_needed": "high"}))
    assert answer.method.id == "feature"


def test_guidance_abstraction_name_with_ours_is_refused():
    with pytest.raises(ValidationError, match="abstraction_level"):
        RecommendMethodRequest.model_validate({"task_type": "classification", "abstraction_level_needed": "high", "abstraction_level": "low"})


def test_guidance_experts_name_is_refused_naming_ours():
    with pytest.raises(ValidationError, match="num_teachers"):
        RecommendMethodRequest.model_validate({"task_type": "classification", "multiple_experts_available": True})


# ---- diagnose: missing inputs name inputs, mixed raw and summary -----------------------------


def test_diagnose_missing_inputs_are_input_names():
    answer = diagnose_failure(DiagnoseFailureRequest())
    fields = {m.field for m in answer.missing_inputs}
    request_fields = set(DiagnoseFailureRequest.model_fields)
    assert fields <= request_fields, fields - request_fields
    assert {"per_class_accuracy", "size_accuracy_curve", "student_parity_ratio", "feedback_to_teacher"} <= fields
    assert not fields & {"accuracy_mirage", "capacity_cliff"}


def test_diagnose_missing_inputs_name_the_raw_array_when_raw_is_used():
    labels = [0, 1, 0, 1]
    student = np.eye(2)[labels].tolist()
    answer = diagnose_failure(DiagnoseFailureRequest(labels=labels, student_probs=student))
    fields = {m.field for m in answer.missing_inputs}
    assert "teacher_probs" in fields and "per_class_accuracy" not in fields


def test_mixing_raw_arrays_and_summary_numbers_warns_with_both_values():
    labels = [0, 1, 0, 1]
    student = np.eye(2)[[0, 1, 1, 0]].tolist()  # 50% right
    answer = diagnose_failure(DiagnoseFailureRequest(labels=labels, student_probs=student, overall_accuracy=0.95))
    warning = next(w for w in answer.warnings if w.id == "raw_and_summary_mixed")
    assert "overall_accuracy" in warning.message and "0.95" in warning.message and "0.5" in warning.message


def test_summary_numbers_alone_do_not_warn_about_mixing():
    answer = diagnose_failure(DiagnoseFailureRequest(overall_accuracy=0.95, per_class_accuracy={"a": 0.95, "b": 0.94}))
    assert "raw_and_summary_mixed" not in {w.id for w in answer.warnings}


# ---- bias: fairness metrics degrading disproportionately -------------------------------------

_GAP = 0.05  # max_group_accuracy_gap_increase in failure_modes.yaml; test_gap_constant_matches_the_rules checks it


def test_gap_constant_matches_the_rules():
    assert R.failure_modes["modes"]["bias_amplification"]["thresholds"]["max_group_accuracy_gap_increase"] == _GAP


@pytest.mark.parametrize(
    "teacher, student, expected",
    [
        ({"a": 0.95, "b": 0.93}, {"a": 0.94, "b": 0.84}, "detected"),  # gap 0.02 -> 0.10
        ({"a": 0.95, "b": 0.93}, {"a": 0.92, "b": 0.90}, "clear"),  # both lose 0.03: proportionate
        ({"a": 0.95, "b": 0.90}, {"a": 0.95, "b": 0.90 - _GAP}, "clear"),  # widened by exactly the threshold
    ],
)
def test_group_accuracy_gap(teacher, student, expected):
    answer = diagnose_failure(DiagnoseFailureRequest(teacher_group_accuracy=teacher, student_group_accuracy=student))
    finding = _finding(answer, "bias_amplification")
    assert finding.status == expected
    assert any(e.metric == "group_accuracy_gap_increase" for e in finding.evidence)


def test_parity_holds_but_a_group_collapses():
    # selection rates equal (parity 1.0 for both), yet group b's accuracy falls far more than group a's
    answer = diagnose_failure(DiagnoseFailureRequest(teacher_parity_ratio=1.0, student_parity_ratio=1.0,
                                                     teacher_group_accuracy={"a": 0.9, "b": 0.9}, student_group_accuracy={"a": 0.89, "b": 0.7}))
    assert _finding(answer, "bias_amplification").status == "detected"


def test_group_accuracy_from_raw_arrays():
    # 40 rows a group (failure_modes.yaml statistics: groups under min_group_support are not judged; 4 rows are not)
    for repeat, status in ((10, "detected"), (1, "not_evaluated")):
        labels = [1, 0, 1, 0, 1, 0, 1, 0] * repeat
        groups = (["a"] * 4 + ["b"] * 4) * repeat
        teacher = np.eye(2)[labels].tolist()  # right everywhere
        student = np.eye(2)[[1, 0, 1, 0, 0, 1, 1, 0] * repeat].tolist()  # group b half wrong
        answer = diagnose_failure(DiagnoseFailureRequest(labels=labels, student_probs=student, teacher_probs=teacher, groups=groups))
        assert answer.metrics.student_group_accuracy == {"a": 1.0, "b": 0.5}
        assert answer.metrics.teacher_group_accuracy == {"a": 1.0, "b": 1.0}
        assert _finding(answer, "bias_amplification").status == status


def test_group_accuracy_needs_the_same_groups():
    with pytest.raises(InputError) as err:
        diagnose_failure(DiagnoseFailureRequest(teacher_group_accuracy={"a": 0.9, "b": 0.9}, student_group_accuracy={"a": 0.9, "c": 0.9}))
    assert err.value.field == "student_group_accuracy"


# ---- numbers nobody on the team wrote: wrong answers found by probing the tools ---------------


def test_absurd_size_ratio_is_refused_not_crashed():
    # 1e308 / 1e-300 overflowed to infinity and the answer could not be serialised
    with pytest.raises(ValidationError, match="student_size"):
        ScoreDistillationRequest(alpha=0.5, teacher_size=1e-300, teacher_accuracy=0.9, student_size=1e308, student_accuracy=0.5)
    limit = R.score["max_size_ratio"]
    with pytest.raises(ValidationError, match="candidates"):
        ScoreDistillationRequest(alpha=0.5, teacher_size=1, teacher_accuracy=0.9, candidates=[{"name": "bytes", "size": limit * 2, "accuracy": 0.5}])
    ok = _rank(alpha=0.5, teacher_size=1, teacher_accuracy=0.9, student_size=limit, student_accuracy=0.5)
    assert "student_larger_than_teacher" in {w.id for w in ok.warnings}


def test_overall_accuracy_outside_the_class_accuracies_is_refused():
    # overall 0.0 beside classes at 1.0 and 0.9 made the minority floor 0 and the mirage 'clear'
    with pytest.raises(InputError) as err:
        diagnose_failure(DiagnoseFailureRequest(per_class_accuracy={"a": 1.0, "b": 0.9}, overall_accuracy=0.0))
    assert err.value.field == "overall_accuracy"
    tolerance = R.failure_modes["modes"]["accuracy_mirage"]["thresholds"]["overall_outside_classes_tolerance"]
    rounded = diagnose_failure(DiagnoseFailureRequest(per_class_accuracy={"a": 0.95, "b": 0.93}, overall_accuracy=0.95 + tolerance))
    assert _finding(rounded, "accuracy_mirage").status == "clear"  # rounding within the tolerance is accepted


def test_positive_class_beyond_the_columns_is_refused():
    # a class the student never outputs made every selection rate 0 and parity silently unevaluated
    with pytest.raises(InputError) as err:
        diagnose_failure(DiagnoseFailureRequest(labels=[0, 1], student_probs=[[0.6, 0.4], [0.3, 0.7]], groups=["a", "b"], positive_class=7))
    assert err.value.field == "positive_class"


@pytest.mark.parametrize(
    "teacher, student, expected",
    [
        ({"a": 0.5, "b": 0.9}, {"a": 0.9, "b": 0.5}, "detected"),  # the gap is the same but group b lost 0.4: the bias moved onto b
        ({"a": 0.8, "b": 0.9}, {"a": 0.9, "b": 0.9}, "clear"),  # the disadvantaged group improved: fairer, not biased
        ({"a": 0.95, "b": 0.70}, {"a": 0.80, "b": 0.70}, "clear"),  # the gap narrowed
    ],
)
def test_uneven_group_losses(teacher, student, expected):
    answer = diagnose_failure(DiagnoseFailureRequest(teacher_group_accuracy=teacher, student_group_accuracy=student))
    assert _finding(answer, "bias_amplification").status == expected


@pytest.mark.parametrize("t, fires", [(100, True), (10, True), (6, False), (3, False)])
def test_planned_temperature_outside_the_recommended_band(t, fires):
    # T = 100 for a classifier (band 3 to 6, the fix range tops out at 20) drew no warning at all
    answer = recommend_method(RecommendMethodRequest(task_type="classification", task_similarity=0.9, planned_temperature=t))
    assert ("planned_temperature_outside_range" in {w.id for w in answer.warnings}) is fires


def test_text_output_shows_the_questions_and_the_floor():
    from skill.formatting import to_text

    text = to_text(recommend_method(RecommendMethodRequest(task_type="classification", teacher_params=800, student_params=50)))
    assert "ask:" in text and "Assumed" in text
    ranked = to_text(_rank(alpha=0.8, teacher_size=100, teacher_accuracy=0.95, min_student_accuracy=0.9, candidates=[USELESS, GOOD]))
    assert "useless" in ranked.split("BELOW THE ACCURACY FLOOR")[0].splitlines()[-1]
    single = _rank(alpha=0.7, teacher_size=800, teacher_accuracy=0.95, student_size=50, student_accuracy=0.88, min_student_accuracy=0.9)
    assert "0.88 is below the accuracy floor 0.9" in next(w.message for w in single.warnings if w.id == "below_accuracy_floor")


def test_many_cliffs_keep_the_diagnosis_short():
    # alternating accuracies make a cliff at nearly every size; the text named all of them (44,000 characters)
    finding = _cliff([(10000 + i, 0.9 if i % 2 else 0.5) for i in range(1000)])
    assert finding.status == "detected" and len(finding.diagnosis) < 1000 and "more (see evidence)" in finding.diagnosis
    assert len(finding.evidence) >= 400
