"""Diagnose the five failure modes from summary numbers or from raw labels and probabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import numpy as np

from skill.errors import InputError
from skill.models import (
    AdviceWarning,
    ComputedMetrics,
    DiagnoseFailureRequest,
    DiagnoseFailureResponse,
    Evidence,
    Finding,
    MissingInput,
)
from skill.next_steps import steps
from skill.rules import get_rules

_SUMMARISE_HINT = (
    "summarise instead: pass overall_accuracy, per_class_accuracy and class_support, "
    "student_error_confidence and teacher_error_confidence, or diagnose a random sample of the predictions"
)


def _probs(name: str, rows: list[list[float]], n: int) -> "np.ndarray":
    """Check a probability matrix: n rows, equal width, finite values in [0, 1], rows summing to 1."""
    import numpy as np

    if len(rows) != n:
        raise InputError(name, f"has {len(rows)} rows but labels has {n}; give one row per label")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or widths == {0} or widths == {1}:
        raise InputError(name, f"rows must all have the same number (2 or more) of class probabilities; got widths {sorted(widths)[:5]}")
    array = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(array).all():
        raise InputError(name, "contains NaN or infinity; pass finite probabilities")
    if (array < 0).any() or (array > 1).any() or not np.allclose(array.sum(axis=1), 1.0, atol=1e-2):
        raise InputError(name, "rows must be probabilities in [0, 1] summing to 1; these look like logits, apply softmax first")
    return array


def _raw_metrics(request: DiagnoseFailureRequest) -> ComputedMetrics | None:
    """Compute the metrics from raw arrays, within the documented size limits (numpy is imported only here)."""
    import numpy as np

    from skill import metrics

    if request.labels is None and request.student_probs is None:
        return None
    if request.labels is None or request.student_probs is None:
        missing = "labels" if request.labels is None else "student_probs"
        raise InputError(missing, "raw diagnosis needs both labels and student_probs (teacher_probs optional)")
    limits = get_rules().failure_modes["raw_limits"]
    n = len(request.labels)
    if n == 0:
        raise InputError("labels", "is empty; pass at least one label")
    if n > limits["max_samples"]:
        raise InputError("labels", f"has {n} samples; at most {limits['max_samples']} are accepted; {_SUMMARISE_HINT}")
    width = len(request.student_probs[0]) if request.student_probs else 0
    total = n * width * (2 if request.teacher_probs is not None else 1)
    if total > limits["max_values"]:
        raise InputError("student_probs", f"holds {total} values with teacher_probs; at most {limits['max_values']}; {_SUMMARISE_HINT}")
    student = _probs("student_probs", request.student_probs, n)
    labels = np.asarray(request.labels)
    k = student.shape[1]
    if labels.min() < 0 or labels.max() >= k:
        raise InputError("labels", f"class ids must lie in 0..{k - 1} (student_probs has {k} columns); got {int(labels.min())}..{int(labels.max())}")
    teacher = _probs("teacher_probs", request.teacher_probs, n) if request.teacher_probs is not None else None
    if teacher is not None and teacher.shape[1] != k:
        raise InputError("teacher_probs", f"has {teacher.shape[1]} columns but student_probs has {k}")
    if request.groups is not None and len(request.groups) != n:
        raise InputError("groups", f"has {len(request.groups)} entries but labels has {n}")

    student_pred = student.argmax(axis=1)
    positive = request.positive_class if request.positive_class is not None else 1
    computed = ComputedMetrics(
        n_samples=n,
        overall_accuracy=metrics.accuracy(labels, student_pred),
        per_class_accuracy=metrics.per_class_accuracy(labels, student_pred),
        class_support=metrics.class_support(labels),
        student_ece=metrics.expected_calibration_error(labels, student),
        student_error_confidence=metrics.error_confidence(labels, student),
        student_mean_confidence=float(student.max(axis=1).mean()),
    )
    if request.groups is not None:
        computed.student_parity_ratio = metrics.parity_ratio(student_pred, request.groups, positive)
    if teacher is not None:
        teacher_pred = teacher.argmax(axis=1)
        computed.teacher_accuracy = metrics.accuracy(labels, teacher_pred)
        computed.teacher_ece = metrics.expected_calibration_error(labels, teacher)
        computed.teacher_error_confidence = metrics.error_confidence(labels, teacher)
        if request.groups is not None:
            computed.teacher_parity_ratio = metrics.parity_ratio(teacher_pred, request.groups, positive)
    return computed


def _exact(value: float) -> float:
    """Round away float noise so a value exactly on a threshold (0.90 - 0.85) compares as exact."""
    return round(value, 9)


def _pick(given: Any, computed: Any) -> Any:
    """A number the user gave wins over one computed from raw arrays."""
    return given if given is not None else computed


def _finding(mode_id: str, status: str, evidence: list[Evidence], diagnosis: str) -> Finding:
    mode = get_rules().failure_modes["modes"][mode_id]
    return Finding(
        id=mode_id, name=mode["name"], status=status, evidence=evidence, diagnosis=diagnosis,
        fix=mode["fix"], references=list(mode["references"]),
    )


def _accuracy_mirage(per_class: Mapping[str, float] | None, support: Mapping[str, int] | None, overall: float | None) -> Finding:
    t = get_rules().failure_modes["modes"]["accuracy_mirage"]["thresholds"]
    if not per_class or len(per_class) < 2:
        return _finding("accuracy_mirage", "not_evaluated", [], "Needs per_class_accuracy for two or more classes (or raw labels and student_probs).")
    if overall is None:
        if support and set(support) >= set(per_class) and sum(support[c] for c in per_class) > 0:
            overall = sum(per_class[c] * support[c] for c in per_class) / sum(support[c] for c in per_class)
        else:
            overall = sum(per_class.values()) / len(per_class)
    spread = _exact(max(per_class.values()) - min(per_class.values()))
    if support and set(per_class) <= set(support):
        minority = min(per_class, key=lambda c: (support[c], per_class[c]))
        how = "smallest support"
    else:
        minority = min(per_class, key=lambda c: per_class[c])
        how = "weakest class (no class_support given)"
    floor = t["min_minority_to_overall_ratio"] * overall
    evidence = [
        Evidence(metric="per_class_spread", value=round(spread, 6), threshold=t["max_per_class_spread"], comparison="detected if value > threshold"),
        Evidence(metric=f"minority_class_accuracy[{minority}] ({how})", value=per_class[minority], threshold=round(floor, 6),
                 comparison=f"detected if value < {t['min_minority_to_overall_ratio']} x overall accuracy ({overall:.4f})"),
    ]
    detected = spread > t["max_per_class_spread"] or per_class[minority] < floor
    if detected:
        weakest = min(per_class, key=lambda c: per_class[c])
        masked = " behind a high average" if overall > t["high_average_accuracy"] else ""
        diagnosis = f"Per-class collapse{masked}: class {weakest} reaches {per_class[weakest]:.3f} against {overall:.3f} overall."
    else:
        diagnosis = "Per-class accuracy is even enough; no class is hidden by the average."
    return _finding("accuracy_mirage", "detected" if detected else "clear", evidence, diagnosis)


def _temperature_blindness(student_conf: float | None, teacher_conf: float | None, computed: ComputedMetrics | None,
                           temperature: float | None) -> Finding:
    t = get_rules().failure_modes["modes"]["temperature_blindness"]["thresholds"]
    evidence: list[Evidence] = []
    flags: list[str] = []
    if temperature is not None:
        evidence.append(Evidence(metric="training_temperature", value=temperature, threshold=t["max_training_temperature_at_risk"],
                                 comparison="at risk if value <= threshold (soft information lost)"))
    evaluated = False
    if student_conf is not None and teacher_conf is not None:
        evaluated = True
        evidence.append(Evidence(metric="student_error_confidence", value=round(student_conf, 6), threshold=round(teacher_conf, 6),
                                 comparison="detected if value > teacher_error_confidence"))
        if student_conf > teacher_conf:
            flags.append(f"the student is surer of its mistakes ({student_conf:.3f}) than the teacher of its own ({teacher_conf:.3f})")
    if computed is not None and computed.teacher_ece is not None:
        evaluated = True
        limit = max(t["ece_ratio"] * computed.teacher_ece, computed.teacher_ece + t["ece_margin"])
        evidence.append(Evidence(metric="student_ece", value=round(computed.student_ece, 6), threshold=round(limit, 6),
                                 comparison=f"mis-calibrated if value > {t['ece_ratio']} x teacher ECE and >= teacher ECE + {t['ece_margin']}"))
        if computed.student_ece > t["ece_ratio"] * computed.teacher_ece and computed.student_ece >= computed.teacher_ece + t["ece_margin"]:
            flags.append(f"student ECE {computed.student_ece:.3f} against the teacher's {computed.teacher_ece:.3f}")
    if not evaluated:
        return _finding("temperature_blindness", "not_evaluated", evidence,
                        "Needs student_error_confidence and teacher_error_confidence, or raw student_probs and teacher_probs.")
    if not flags:
        return _finding("temperature_blindness", "clear", evidence,
                        "The student is no more confident in its errors than the teacher, and its calibration is in line.")
    if computed is not None and computed.student_mean_confidence < computed.overall_accuracy:
        return _finding("temperature_blindness", "detected", evidence,
                        f"Mis-calibrated towards under-confidence ({'; '.join(flags)}): the distillation temperature is likely too high "
                        "for this student (over-smoothing); lower it and recheck ECE.")
    low, high = t["fix_temperature_range"]
    return _finding("temperature_blindness", "detected", evidence,
                    f"Over-confident student: {'; '.join(flags)}. Distil at T in [{low}, {high}] and recheck calibration.")


def _capacity_cliff(curve: list[tuple[int, float]] | None) -> Finding:
    t = get_rules().failure_modes["modes"]["capacity_cliff"]["thresholds"]
    if not curve or len(curve) < 2:
        return _finding("capacity_cliff", "not_evaluated", [], "Needs size_accuracy_curve with two or more student sizes.")
    ordered = sorted(curve, key=lambda p: -p[0])
    evidence, cliffs = [], []
    for (big_p, big_a), (small_p, small_a) in zip(ordered, ordered[1:]):
        reduction = _exact((big_p - small_p) / big_p)
        drop = _exact(big_a - small_a)
        is_cliff = reduction < t["max_param_reduction"] and drop > t["min_accuracy_drop"]
        if is_cliff or drop > 0:
            evidence.append(Evidence(metric=f"{big_p}->{small_p} params", value={"param_reduction": round(reduction, 6), "accuracy_drop": round(drop, 6)},
                                     threshold={"max_param_reduction": t["max_param_reduction"], "min_accuracy_drop": t["min_accuracy_drop"]},
                                     comparison="cliff if param_reduction < max and accuracy_drop > min"))
        if is_cliff:
            cliffs.append(f"{big_p} -> {small_p} params ({reduction:.1%} fewer) loses {drop:.3f}")
    if cliffs:
        return _finding("capacity_cliff", "detected", evidence, "Capacity cliff: " + "; ".join(cliffs) + ". Keep the student above the larger size.")
    return _finding("capacity_cliff", "clear", evidence, "No small size step causes a large accuracy drop on this curve.")


def _hierarchical_rigidity(finds: bool | None, feedback: bool | None) -> Finding:
    evidence = []
    if finds is not None:
        evidence.append(Evidence(metric="student_finds_edge_cases", value=finds, threshold=True, comparison="risk if true"))
    if feedback is not None:
        evidence.append(Evidence(metric="feedback_to_teacher", value=feedback, threshold=False, comparison="detected if false while the student finds edge cases"))
    if finds is None or (finds and feedback is None):
        return _finding("hierarchical_rigidity", "not_evaluated", evidence, "Needs student_finds_edge_cases and feedback_to_teacher.")
    if finds and not feedback:
        return _finding("hierarchical_rigidity", "detected", evidence, "The student meets edge cases that never reach the teacher; the one-way hierarchy stops both from improving.")
    return _finding("hierarchical_rigidity", "clear", evidence, "Edge cases flow back to the teacher (or the student finds none).")


def _bias_amplification(teacher_ratio: float | None, student_ratio: float | None) -> Finding:
    t = get_rules().failure_modes["modes"]["bias_amplification"]["thresholds"]
    if teacher_ratio is None or student_ratio is None:
        return _finding("bias_amplification", "not_evaluated", [], "Needs teacher_parity_ratio and student_parity_ratio (or raw probabilities with groups).")
    if teacher_ratio == 0:
        return _finding("bias_amplification", "not_evaluated", [], "The teacher's parity ratio is 0; a relative change is undefined. Compare group selection rates directly.")
    drop = _exact((teacher_ratio - student_ratio) / teacher_ratio)
    evidence = [Evidence(metric="relative_parity_drop", value=round(drop, 6), threshold=t["max_relative_parity_drop"], comparison="detected if value > threshold")]
    if drop > t["max_relative_parity_drop"]:
        return _finding("bias_amplification", "detected", evidence,
                        f"Parity fell from {teacher_ratio:.3f} (teacher) to {student_ratio:.3f} (student), {drop:.1%} relative: compression amplified the bias.")
    return _finding("bias_amplification", "clear", evidence, "The student's demographic parity is within tolerance of the teacher's.")


def diagnose_failure(request: DiagnoseFailureRequest) -> DiagnoseFailureResponse:
    """Evaluate each failure mode on what is given; a mode without its inputs is not_evaluated, never guessed."""
    computed = _raw_metrics(request)
    per_class = _pick(request.per_class_accuracy, computed.per_class_accuracy if computed else None)
    support = _pick(request.class_support, computed.class_support if computed else None)
    overall = _pick(request.overall_accuracy, computed.overall_accuracy if computed else None)
    findings = [
        _accuracy_mirage(per_class, support, overall),
        _temperature_blindness(
            _pick(request.student_error_confidence, computed.student_error_confidence if computed else None),
            _pick(request.teacher_error_confidence, computed.teacher_error_confidence if computed else None),
            computed,
            request.training_temperature,
        ),
        _capacity_cliff([(p.params, p.accuracy) for p in request.size_accuracy_curve] if request.size_accuracy_curve else None),
        _hierarchical_rigidity(request.student_finds_edge_cases, request.feedback_to_teacher),
        _bias_amplification(
            _pick(request.teacher_parity_ratio, computed.teacher_parity_ratio if computed else None),
            _pick(request.student_parity_ratio, computed.student_parity_ratio if computed else None),
        ),
    ]
    missing = [MissingInput(field=f.id, effect=f.diagnosis) for f in findings if f.status == "not_evaluated"]
    warnings = []
    t_risk = get_rules().failure_modes["modes"]["temperature_blindness"]["thresholds"]["max_training_temperature_at_risk"]
    if request.training_temperature is not None and request.training_temperature <= t_risk:
        warnings.append(AdviceWarning(id="trained_at_t1", message=f"Trained at T = {request.training_temperature:g}: soft labels carry little beyond the hard label.",
                                      references=["references/failure-modes.md#temperature-blindness"]))
    detected = [f.id for f in findings if f.status == "detected"]
    return DiagnoseFailureResponse(
        findings=findings,
        detected=detected,
        metrics=computed,
        warnings=warnings,
        missing_inputs=missing,
        next_steps=steps("gates", "distill") if detected else steps("gates"),
        references=sorted({r for f in findings if f.status == "detected" for r in f.references}) or ["references/failure-modes.md"],
    )
