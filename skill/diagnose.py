"""Diagnose the five failure modes from summary numbers or from raw labels and probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from skill.diagnose_stats import Rows, error_confidence_gap, group_shift, wilson
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
from skill.next_steps import for_run, steps
from skill.rules import get_rules

_SUMMARISE_HINT = (
    "summarise instead: pass overall_accuracy, per_class_accuracy and class_support, "
    "student_error_confidence and teacher_error_confidence, or diagnose a random sample of the predictions"
)


def _probs(name: str, rows: list[list[float]], n: int) -> np.ndarray:
    """Check a probability matrix: n rows, equal width, finite values in [0, 1], rows summing to 1."""
    import numpy as np

    if len(rows) != n:
        raise InputError(name, f"has {len(rows)} rows but labels has {n}; give one row per label")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or widths == {0} or widths == {1}:
        raise InputError(
            name,
            f"rows must all have the same number (2 or more) of class probabilities; got widths {sorted(widths)[:5]}",
        )
    array = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(array).all():
        raise InputError(name, "contains NaN or infinity; pass finite probabilities")
    if (array < 0).any() or (array > 1).any() or not np.allclose(array.sum(axis=1), 1.0, atol=1e-2):
        raise InputError(
            name, "rows must be probabilities in [0, 1] summing to 1; these look like logits, apply softmax first"
        )
    return array


def _check_raw_size(labels: list[int], student_probs: list[list[float]], with_teacher: bool) -> int:
    """Refuse raw arrays beyond the documented limits before numpy sees them; returns the number of samples."""
    limits = get_rules().failure_modes["raw_limits"]
    n = len(labels)
    if n == 0:
        raise InputError("labels", "is empty; pass at least one label")
    if n > limits["max_samples"]:
        raise InputError("labels", f"has {n} samples; at most {limits['max_samples']} are accepted; {_SUMMARISE_HINT}")
    width = len(student_probs[0]) if student_probs else 0
    total = n * width * (2 if with_teacher else 1)
    if total > limits["max_values"]:
        raise InputError(
            "student_probs",
            f"holds {total} values with teacher_probs; at most {limits['max_values']}; {_SUMMARISE_HINT}",
        )
    return n


def _check_classes(request: DiagnoseFailureRequest, labels: np.ndarray, k: int) -> None:
    """The positive class and every label must name one of the student's k columns."""
    if request.groups is not None and request.positive_class is not None and request.positive_class >= k:
        raise InputError(
            "positive_class", f"is {request.positive_class} but student_probs has {k} columns (classes 0..{k - 1})"
        )
    if labels.min() < 0 or labels.max() >= k:
        raise InputError(
            "labels",
            f"class ids must lie in 0..{k - 1} (student_probs has {k} columns); got "
            f"{int(labels.min())}..{int(labels.max())}",
        )


def _check_teacher_and_groups(request: DiagnoseFailureRequest, teacher: np.ndarray | None, k: int, n: int) -> None:
    """The teacher's rows must have the student's width and the groups one entry per label."""
    if teacher is not None and teacher.shape[1] != k:
        raise InputError("teacher_probs", f"has {teacher.shape[1]} columns but student_probs has {k}")
    if request.groups is not None and len(request.groups) != n:
        raise InputError("groups", f"has {len(request.groups)} entries but labels has {n}")


def _computed_metrics(
    labels: np.ndarray, student: np.ndarray, teacher: np.ndarray | None, groups: list[str] | None, positive: int
) -> ComputedMetrics:
    """The summary numbers of both models, computed from the checked arrays."""
    from skill import metrics

    student_pred = student.argmax(axis=1)
    computed = ComputedMetrics(
        n_samples=len(labels),
        overall_accuracy=metrics.accuracy(labels, student_pred),
        per_class_accuracy=metrics.per_class_accuracy(labels, student_pred),
        class_support=metrics.class_support(labels),
        student_ece=metrics.expected_calibration_error(labels, student),
        student_error_confidence=metrics.error_confidence(labels, student),
        student_mean_confidence=float(student.max(axis=1).mean()),
    )
    if groups is not None:
        computed.student_parity_ratio = metrics.parity_ratio(student_pred, groups, positive)
        computed.student_group_accuracy = metrics.group_accuracy(labels, student_pred, groups)
    if teacher is not None:
        teacher_pred = teacher.argmax(axis=1)
        computed.teacher_accuracy = metrics.accuracy(labels, teacher_pred)
        computed.teacher_ece = metrics.expected_calibration_error(labels, teacher)
        computed.teacher_error_confidence = metrics.error_confidence(labels, teacher)
        if groups is not None:
            computed.teacher_parity_ratio = metrics.parity_ratio(teacher_pred, groups, positive)
            computed.teacher_group_accuracy = metrics.group_accuracy(labels, teacher_pred, groups)
    return computed


def _raw_metrics(request: DiagnoseFailureRequest) -> tuple[ComputedMetrics | None, Rows | None]:
    """Compute the metrics from raw arrays, within the documented size limits (numpy is imported only here)."""
    import numpy as np

    if request.labels is None and request.student_probs is None:
        return None, None
    if request.labels is None or request.student_probs is None:
        missing = "labels" if request.labels is None else "student_probs"
        raise InputError(missing, "raw diagnosis needs both labels and student_probs (teacher_probs optional)")
    n = _check_raw_size(request.labels, request.student_probs, request.teacher_probs is not None)
    student = _probs("student_probs", request.student_probs, n)
    labels = np.asarray(request.labels)
    k = student.shape[1]
    _check_classes(request, labels, k)
    teacher = _probs("teacher_probs", request.teacher_probs, n) if request.teacher_probs is not None else None
    _check_teacher_and_groups(request, teacher, k, n)
    positive = request.positive_class if request.positive_class is not None else 1
    computed = _computed_metrics(labels, student, teacher, request.groups, positive)
    groups = np.asarray(request.groups) if request.groups is not None else None
    return computed, Rows(labels, student, teacher, groups, positive)


def _exact(value: float) -> float:
    """Round away float noise so a value exactly on a threshold (0.90 - 0.85) compares as exact."""
    return round(value, 9)


def _pick(given: Any, computed: Any) -> Any:
    """A number the user gave wins over one computed from raw arrays."""
    return given if given is not None else computed


_STATS_SOURCE = "intervals: {intervals}; minimum supports: {minimum_supports} (failure_modes.yaml statistics)"


def _finding(
    mode_id: str, status: str, evidence: list[Evidence], diagnosis: str, fix: str | None = None, counted: bool = False
) -> Finding:
    mode = get_rules().failure_modes["modes"][mode_id]
    source = mode.get("source") or "unsourced starting point (failure_modes.yaml thresholds)"
    if counted:
        source += "; " + _STATS_SOURCE.format(**get_rules().failure_modes["statistics"]["sources"])
    return Finding(
        id=mode_id,
        name=mode["name"],
        status=status,
        evidence=evidence,
        diagnosis=diagnosis,
        fix=fix or mode["fix"],
        references=list(mode["references"]),
        source=source,
    )


def _minority(per_class: Mapping[str, float], support: Mapping[str, int] | None) -> tuple[str, str]:
    """The class the minority clause judges, and how it was chosen: the smallest class only when its support is
    actually low (below minority_support_ratio of the median support); else the weakest class."""
    ratio = get_rules().failure_modes["statistics"]["accuracy_mirage"]["minority_support_ratio"]
    if support and set(per_class) <= set(support):
        sizes = sorted(support[c] for c in per_class)
        median = sizes[len(sizes) // 2] if len(sizes) % 2 else (sizes[len(sizes) // 2 - 1] + sizes[len(sizes) // 2]) / 2
        smallest = min(per_class, key=lambda c: (support[c], per_class[c]))
        if support[smallest] < ratio * median:
            return smallest, f"minority: {support[smallest]} rows, under {ratio} x the median class support {median:g}"
        return min(per_class, key=lambda c: per_class[c]), "weakest class; the classes are balanced, none is a minority"
    return min(per_class, key=lambda c: per_class[c]), "weakest class (no class_support given)"


def _named(c: str, names: list[str] | None) -> str:
    """A class id with its name when the data had text labels ('2 (eel)')."""
    return f"{c} ({names[int(c)]})" if names and c.isdigit() and int(c) < len(names) else c


def _accuracy_mirage(
    per_class: Mapping[str, float] | None,
    support: Mapping[str, int] | None,
    overall: float | None,
    counted: bool = False,
    names: list[str] | None = None,
) -> Finding:
    """Spread and minority clauses. `counted`: the accuracies come from rows (raw predictions or a run), so classes
    below min_class_support are not judged and each clause must hold over Wilson intervals, not only at the point."""
    t = get_rules().failure_modes["modes"]["accuracy_mirage"]["thresholds"]
    stats = get_rules().failure_modes["statistics"]["accuracy_mirage"]
    counts: Mapping[str, int] = support or {}  # read only where counted, which needs every class's support
    counted = counted and bool(counts) and set(per_class or {}) <= set(counts)
    too_small: dict[str, int] = {}
    if counted and per_class:
        too_small = {c: counts[c] for c in per_class if counts[c] < stats["min_class_support"]}
        per_class = {c: a for c, a in per_class.items() if c not in too_small}
    unjudged = (
        f" Not evaluated: class(es) {', '.join(_named(c, names) for c in sorted(too_small)[:10])} with fewer than "
        f"{stats['min_class_support']} test rows."
        if too_small
        else ""
    )
    if not per_class or len(per_class) < 2:
        return _finding(
            "accuracy_mirage",
            "not_evaluated",
            [],
            "Needs per_class_accuracy for two or more classes (or raw labels and student_probs)"
            + (f" with at least {stats['min_class_support']} rows each." if counted else ".")
            + unjudged,
            counted=counted,
        )
    if overall is None:
        if support and set(support) >= set(per_class) and sum(support[c] for c in per_class) > 0:
            overall = sum(per_class[c] * support[c] for c in per_class) / sum(support[c] for c in per_class)
        else:
            overall = sum(per_class.values()) / len(per_class)
    spread = _exact(max(per_class.values()) - min(per_class.values()))
    minority, how = _minority(per_class, support)
    floor = t["min_minority_to_overall_ratio"] * overall
    best, worst = max(per_class, key=lambda c: per_class[c]), min(per_class, key=lambda c: per_class[c])
    evidence = [
        Evidence(
            metric="per_class_spread",
            value=round(spread, 6),
            threshold=t["max_per_class_spread"],
            comparison="detected if value > threshold",
        ),
        Evidence(
            metric=f"minority_class_accuracy[{_named(minority, names)}] ({how})",
            value=per_class[minority],
            threshold=round(floor, 6),
            comparison=f"detected if value < {t['min_minority_to_overall_ratio']} x overall accuracy ({overall:.4f})",
        ),
    ]
    spread_flag, minority_flag = spread > t["max_per_class_spread"], per_class[minority] < floor
    if counted:
        interval = {c: wilson(round(per_class[c] * counts[c]), counts[c]) for c in per_class}
        sure_spread = _exact(interval[best][0] - interval[worst][1])
        evidence[0] = Evidence(
            metric=(
                f"per_class_spread beyond noise (Wilson: class {_named(best, names)} low {interval[best][0]:.3f} minus "
                f"class {_named(worst, names)} high {interval[worst][1]:.3f})"
            ),
            value=round(sure_spread, 6),
            threshold=t["max_per_class_spread"],
            comparison=(
                f"detected if value > threshold (point spread {spread:.3f}; {counts[best]} and {counts[worst]} rows)"
            ),
        )
        evidence[1] = Evidence(
            metric=f"minority_class_accuracy[{_named(minority, names)}] ({how}), Wilson upper bound",
            value=round(interval[minority][1], 6),
            threshold=round(floor, 6),
            comparison=(
                f"detected if value < {t['min_minority_to_overall_ratio']} x overall accuracy ({overall:.4f}); point "
                f"{per_class[minority]:.3f} on {counts[minority]} rows"
            ),
        )
        spread_flag, minority_flag = sure_spread > t["max_per_class_spread"], interval[minority][1] < floor
    detected = spread_flag or minority_flag
    if detected:
        masked = " behind a high average" if overall > t["high_average_accuracy"] else ""
        rows = f" ({counts[worst]} test rows)" if counted else ""
        diagnosis = (
            f"Per-class collapse{masked}: class {_named(worst, names)} reaches {per_class[worst]:.3f}{rows} against "
            f"{overall:.3f} overall."
        )
    elif counted and (spread > t["max_per_class_spread"] or per_class[minority] < floor):
        diagnosis = (
            f"Per-class accuracy differs (class {_named(worst, names)} {per_class[worst]:.3f} against class "
            f"{_named(best, names)} {per_class[best]:.3f}), but not beyond the noise of this many test rows; a larger "
            "test set would settle it."
        )
    else:
        diagnosis = "Per-class accuracy is even enough; no class is hidden by the average."
    return _finding(
        "accuracy_mirage", "detected" if detected else "clear", evidence, diagnosis + unjudged, counted=counted
    )


def _temperature_fix(temperature: float | None) -> tuple[str | None, str]:
    """(the fix, the advice sentence) for an over-confident student, given the temperature the run used."""
    mode = get_rules().failure_modes["modes"]["temperature_blindness"]
    low, high = mode["thresholds"]["fix_temperature_range"]
    if temperature is not None and low <= temperature <= high:
        text = mode["fix_in_range"].format(T=f"{temperature:g}")
        return text, text
    if temperature is not None and temperature > high:
        text = mode["fix_above_range"].format(T=f"{temperature:g}")
        return text, text
    at = f" (this run used T = {temperature:g})" if temperature is not None else ""
    return None, f"Distil at T in [{low}, {high}]{at} and recheck calibration."


@dataclass
class _Clauses:
    """What a mode's clauses found so far: the evidence, the flags that detect it, the notes on noise, and whether
    any clause could be evaluated at all."""

    evidence: list[Evidence] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    evaluated: bool = False


def _error_confidence_beyond_noise(
    found: _Clauses, student_conf: float, teacher_conf: float, gap: dict[str, Any], min_errors: int
) -> None:
    """From raw rows: compare error confidences only with min_errors wrong predictions of each model, and flag only
    when the bootstrap interval of the difference lies above zero."""
    errors = gap["errors"]
    if min(errors.values()) < min_errors:
        found.noise.append(
            f"error confidence not compared: {errors['student']} student and {errors['teacher']} teacher errors, "
            f"fewer than the {min_errors} each that failure_modes.yaml statistics asks for"
        )
        found.evidence.append(
            Evidence(
                metric="student_error_confidence (too few errors to compare)",
                value=round(student_conf, 6),
                threshold=round(teacher_conf, 6),
                comparison=(
                    f"compared only with at least {min_errors} errors each; here {errors['student']} and "
                    f"{errors['teacher']}"
                ),
            )
        )
        return
    found.evaluated = True
    low, high = gap["interval"]
    found.evidence.append(
        Evidence(
            metric="student_error_confidence",
            value=round(student_conf, 6),
            threshold=round(teacher_conf, 6),
            comparison="detected if value > teacher_error_confidence beyond noise: difference "
            f"{gap['difference']:+.3f}, bootstrap interval over rows [{low:+.3f}, {high:+.3f}] must lie above "
            f"0 ({errors['student']} and {errors['teacher']} errors)",
        )
    )
    if student_conf > teacher_conf and low > 0:
        found.flags.append(
            f"the student is surer of its mistakes ({student_conf:.3f}) than the teacher of its own "
            f"({teacher_conf:.3f}), interval [{low:+.3f}, {high:+.3f}]"
        )
    elif student_conf > teacher_conf:
        found.noise.append(
            f"the student's error confidence {student_conf:.3f} against the teacher's {teacher_conf:.3f} is "
            f"within noise (interval [{low:+.3f}, {high:+.3f}] includes 0)"
        )


def _error_confidence_at_point(found: _Clauses, student_conf: float, teacher_conf: float) -> None:
    """From summary numbers: the point values are all there is, so compare them directly."""
    found.evaluated = True
    found.evidence.append(
        Evidence(
            metric="student_error_confidence",
            value=round(student_conf, 6),
            threshold=round(teacher_conf, 6),
            comparison="detected if value > teacher_error_confidence",
        )
    )
    if student_conf > teacher_conf:
        found.flags.append(
            f"the student is surer of its mistakes ({student_conf:.3f}) than the teacher of its own "
            f"({teacher_conf:.3f})"
        )


def _ece_clause(found: _Clauses, computed: ComputedMetrics | None, t: Mapping[str, Any]) -> None:
    """Calibration against the teacher's: flag a student ECE above both the ratio and the margin over the teacher's."""
    if computed is None or computed.teacher_ece is None:
        return
    found.evaluated = True
    limit = max(t["ece_ratio"] * computed.teacher_ece, computed.teacher_ece + t["ece_margin"])
    found.evidence.append(
        Evidence(
            metric="student_ece",
            value=round(computed.student_ece, 6),
            threshold=round(limit, 6),
            comparison=(
                f"mis-calibrated if value > {t['ece_ratio']} x teacher ECE and >= teacher ECE + {t['ece_margin']}"
            ),
        )
    )
    if (
        computed.student_ece > t["ece_ratio"] * computed.teacher_ece
        and computed.student_ece >= computed.teacher_ece + t["ece_margin"]
    ):
        found.flags.append(f"student ECE {computed.student_ece:.3f} against the teacher's {computed.teacher_ece:.3f}")


def _temperature_verdict(
    found: _Clauses, computed: ComputedMetrics | None, temperature: float | None, counted: bool
) -> Finding:
    """Not evaluated, clear, or detected; a detected student that is under-confident overall was over-smoothed."""
    if not found.evaluated:
        return _finding(
            "temperature_blindness",
            "not_evaluated",
            found.evidence,
            "Needs student_error_confidence and teacher_error_confidence, or raw student_probs and teacher_probs"
            + (f" ({'; '.join(found.noise)})." if found.noise else "."),
            counted=counted,
        )
    if not found.flags:
        within = f" ({'; '.join(found.noise)})" if found.noise else ""
        return _finding(
            "temperature_blindness",
            "clear",
            found.evidence,
            "The student is no more confident in its errors than the teacher beyond noise, and its calibration is in "
            f"line{within}.",
            counted=counted,
        )
    if computed is not None and computed.student_mean_confidence < computed.overall_accuracy:
        return _finding(
            "temperature_blindness",
            "detected",
            found.evidence,
            f"Mis-calibrated towards under-confidence ({'; '.join(found.flags)}): the distillation temperature is "
            "likely too high for this student (over-smoothing); lower it and recheck ECE.",
            fix="Lower the distillation temperature (over-smoothing) and recheck ECE against the teacher's.",
            counted=counted,
        )
    fix, advice = _temperature_fix(temperature)
    return _finding(
        "temperature_blindness",
        "detected",
        found.evidence,
        f"Over-confident student: {'; '.join(found.flags)}. {advice}",
        fix=fix,
        counted=counted,
    )


def _temperature_blindness(
    student_conf: float | None,
    teacher_conf: float | None,
    computed: ComputedMetrics | None,
    temperature: float | None,
    rows: Rows | None = None,
) -> Finding:
    """Error confidence and ECE against the teacher's. From raw rows the error-confidence clause needs min_errors
    wrong predictions of each model and a bootstrap interval of the difference above zero."""
    t = get_rules().failure_modes["modes"]["temperature_blindness"]["thresholds"]
    min_errors = get_rules().failure_modes["statistics"]["temperature_blindness"]["min_errors"]
    found = _Clauses()
    if temperature is not None:
        found.evidence.append(
            Evidence(
                metric="training_temperature",
                value=temperature,
                threshold=t["max_training_temperature_at_risk"],
                comparison="at risk if value <= threshold (soft information lost)",
            )
        )
    gap = (
        error_confidence_gap(rows)
        if rows is not None
        and computed is not None
        and student_conf == computed.student_error_confidence
        and teacher_conf == computed.teacher_error_confidence
        else None
    )
    if student_conf is not None and teacher_conf is not None:
        if gap is not None:
            _error_confidence_beyond_noise(found, student_conf, teacher_conf, gap, min_errors)
        else:
            _error_confidence_at_point(found, student_conf, teacher_conf)
    _ece_clause(found, computed, t)
    return _temperature_verdict(found, computed, temperature, gap is not None)


_MAX_CLIFFS_NAMED = 5  # the diagnosis names the worst few; every pair is in the evidence


def _sizes(curve: list[tuple[int, float]]) -> list[tuple[int, float, float, int]]:
    """(params, mean accuracy, spread, runs) per distinct size, largest first: runs at one size are seeds, not steps."""
    by_size: dict[int, list[float]] = {}
    for params, accuracy in curve:
        by_size.setdefault(params, []).append(accuracy)
    return [(p, sum(a) / len(a), max(a) - min(a), len(a)) for p, a in sorted(by_size.items(), reverse=True)]


def _capacity_cliff(curve: list[tuple[int, float]] | None) -> Finding:
    """Every pair of sizes less than max_param_reduction apart is compared (a chain of small steps can hide a cliff)."""
    t = get_rules().failure_modes["modes"]["capacity_cliff"]["thresholds"]
    sizes = _sizes(curve or [])
    if len(sizes) < 2:
        return _finding(
            "capacity_cliff",
            "not_evaluated",
            [],
            "Needs size_accuracy_curve with two or more different student sizes (runs at one size are seeds of that "
            "size).",
        )
    evidence, cliffs = [], []
    noisy = [(p, spread, runs) for p, _, spread, runs in sizes if runs > 1]
    for p, spread, runs in noisy:
        evidence.append(
            Evidence(
                metric=f"seed spread at {p} params ({runs} runs)",
                value=round(spread, 6),
                threshold=t["min_accuracy_drop"],
                comparison=(
                    "runs at one size are averaged, not read as a cliff; a spread above the threshold means single "
                    "runs cannot show one"
                ),
            )
        )
    params = [p for p, *_ in sizes]
    means = [a for _, a, *_ in sizes]
    end = 1
    for i, big_p in enumerate(params):
        # sizes below this one but within max_param_reduction of it; the window only grows as big_p shrinks
        end = max(end, i + 1)
        while end < len(params) and _exact((big_p - params[end]) / big_p) < t["max_param_reduction"]:
            end += 1
        if end == i + 1:
            continue
        j = min(range(i + 1, end), key=means.__getitem__)
        reduction, drop = _exact((big_p - params[j]) / big_p), _exact(means[i] - means[j])
        if drop <= 0:
            continue
        evidence.append(
            Evidence(
                metric=f"{big_p}->{params[j]} params",
                value={"param_reduction": round(reduction, 6), "accuracy_drop": round(drop, 6)},
                threshold={
                    "max_param_reduction": t["max_param_reduction"],
                    "min_accuracy_drop": t["min_accuracy_drop"],
                },
                comparison=(
                    "cliff if param_reduction < max and accuracy_drop > min (worst smaller size within reach, mean "
                    "over runs)"
                ),
            )
        )
        if drop > t["min_accuracy_drop"]:
            cliffs.append((drop, f"{big_p} -> {params[j]} params ({reduction:.1%} fewer) loses {drop:.3f}"))
    reachable = any(
        _exact((params[i] - params[i + 1]) / params[i]) < t["max_param_reduction"] for i in range(len(params) - 1)
    )
    if not reachable:
        steps_seen = ", ".join(
            f"{params[i]}->{params[i + 1]} ({(params[i] - params[i + 1]) / params[i]:.0%} fewer)"
            for i in range(min(4, len(params) - 1))
        )
        return _finding(
            "capacity_cliff",
            "not_evaluated",
            evidence,
            f"Not evaluated: no two sizes on the curve are less than {t['max_param_reduction']:.0%} apart in "
            f"parameters ({steps_seen}), so a cliff between them cannot be seen. Train sizes closer together: rerun "
            "with --student-sizes at widths within a few percent of the student's (e.g. 0.95x and 0.9x its width).",
        )
    noise = ""
    worst_spread = max((spread for _, spread, _ in noisy), default=0.0)
    if _exact(worst_spread) > t["min_accuracy_drop"]:
        noise = (
            f" Runs at one size differ by up to {worst_spread:.3f}, more than the {t['min_accuracy_drop']} drop that "
            "marks a cliff: compare means over more seeds before trusting the curve."
        )
    if cliffs:
        worst = [text for _, text in sorted(cliffs, key=lambda c: -c[0])[:_MAX_CLIFFS_NAMED]]
        more = f" and {len(cliffs) - len(worst)} more (see evidence)" if len(cliffs) > len(worst) else ""
        return _finding(
            "capacity_cliff",
            "detected",
            evidence,
            "Capacity cliff: " + "; ".join(worst) + more + ". Keep the student above the larger size." + noise,
        )
    return _finding(
        "capacity_cliff", "clear", evidence, "No small size step causes a large accuracy drop on this curve." + noise
    )


def _hierarchical_rigidity(finds: bool | None, feedback: bool | None) -> Finding:
    evidence = []
    if finds is not None:
        evidence.append(
            Evidence(metric="student_finds_edge_cases", value=finds, threshold=True, comparison="risk if true")
        )
    if feedback is not None:
        evidence.append(
            Evidence(
                metric="feedback_to_teacher",
                value=feedback,
                threshold=False,
                comparison="detected if false while the student finds edge cases",
            )
        )
    if finds is None or (finds and feedback is None):
        return _finding(
            "hierarchical_rigidity",
            "not_evaluated",
            evidence,
            "Needs student_finds_edge_cases and feedback_to_teacher.",
        )
    if finds and not feedback:
        return _finding(
            "hierarchical_rigidity",
            "detected",
            evidence,
            "The student meets edge cases that never reach the teacher; the one-way hierarchy stops both from "
            "improving.",
        )
    return _finding(
        "hierarchical_rigidity", "clear", evidence, "Edge cases flow back to the teacher (or the student finds none)."
    )


def _group_shift(
    teacher: Mapping[str, float] | None, student: Mapping[str, float] | None
) -> tuple[float, float, str] | None:
    """How the groups fared: the gap's widening (student minus teacher best-to-worst group accuracy), the spread of
    the groups' accuracy losses (a gain counts as no loss) and what the group that lost most went through; None
    without both models' group accuracies or under two groups."""
    if teacher is None or student is None:
        return None
    if set(teacher) != set(student):
        odd = sorted(set(teacher) ^ set(student))[:5]
        raise InputError(
            "student_group_accuracy", f"and teacher_group_accuracy must name the same groups; they differ on {odd}"
        )
    if len(teacher) < 2:
        return None
    widening = _exact((max(student.values()) - min(student.values())) - (max(teacher.values()) - min(teacher.values())))
    losses = {g: max(teacher[g] - student[g], 0.0) for g in teacher}
    hardest = max(losses, key=losses.__getitem__)
    lost = f"group {hardest} went from {teacher[hardest]:.3f} to {student[hardest]:.3f}"
    return widening, _exact(losses[hardest] - min(losses.values())), lost


def _bias_amplification(
    teacher_ratio: float | None,
    student_ratio: float | None,
    teacher_groups: Mapping[str, float] | None,
    student_groups: Mapping[str, float] | None,
) -> Finding:
    """Both clauses of the rule: demographic parity falls, or per-group accuracy degrades out of proportion."""
    t = get_rules().failure_modes["modes"]["bias_amplification"]["thresholds"]
    evidence: list[Evidence] = []
    flags: list[str] = []
    unknown = []
    if teacher_ratio is not None and student_ratio is not None and teacher_ratio > 0:
        drop = _exact((teacher_ratio - student_ratio) / teacher_ratio)
        evidence.append(
            Evidence(
                metric="relative_parity_drop",
                value=round(drop, 6),
                threshold=t["max_relative_parity_drop"],
                comparison="detected if value > threshold",
            )
        )
        if drop > t["max_relative_parity_drop"]:
            flags.append(
                f"parity fell from {teacher_ratio:.3f} (teacher) to {student_ratio:.3f} (student), {drop:.1%} relative"
            )
    elif teacher_ratio == 0 and student_ratio is not None:
        unknown.append(
            "the teacher's parity ratio is 0, so a relative change is undefined (compare group selection rates "
            "directly)"
        )
    else:
        unknown.append("parity needs teacher_parity_ratio and student_parity_ratio (or raw probabilities with groups)")
    shift = _group_shift(teacher_groups, student_groups)
    if shift is not None:
        widening, spread, lost = shift
        evidence.append(
            Evidence(
                metric="group_accuracy_gap_increase",
                value=round(widening, 6),
                threshold=t["max_group_accuracy_gap_increase"],
                comparison=(
                    "detected if the student's best-minus-worst group accuracy exceeds the teacher's by more than "
                    "threshold"
                ),
            )
        )
        evidence.append(
            Evidence(
                metric="group_loss_spread",
                value=round(spread, 6),
                threshold=t["max_group_loss_spread"],
                comparison=(
                    "detected if the most-hurt group loses more than threshold more than the least-hurt one, unless "
                    "the gap narrowed"
                ),
            )
        )
        if widening > t["max_group_accuracy_gap_increase"]:
            flags.append(f"the gap between groups widened by {widening:.3f}; {lost}")
        elif spread > t["max_group_loss_spread"] and widening >= 0:
            flags.append(f"the groups lost accuracy unevenly ({spread:.3f} apart): {lost}")
    else:
        unknown.append(
            "the group-accuracy check needs teacher_group_accuracy and student_group_accuracy for two or more groups "
            "(or raw probabilities with groups)"
        )
    if not evidence:
        return _finding("bias_amplification", "not_evaluated", [], "Not evaluated: " + "; ".join(unknown) + ".")
    if flags:
        return _finding(
            "bias_amplification", "detected", evidence, "Compression amplified the bias: " + "; ".join(flags) + "."
        )
    checked = (
        "Demographic parity and per-group accuracy are" if len(evidence) == 3 else "The checked fairness metrics are"
    )
    return _finding(
        "bias_amplification",
        "clear",
        evidence,
        f"{checked} within tolerance of the teacher's" + (f" ({unknown[0]})." if unknown else "."),
    )


def _bias_from_rows(shift: dict[str, Any]) -> Finding:
    """Compression-amplified bias from rows: only groups with min_group_support rows are compared, and a clause
    flags only when its point estimate is over the threshold and its bootstrap interval over rows lies above 0."""
    t = get_rules().failure_modes["modes"]["bias_amplification"]["thresholds"]
    small = shift["too_small"]
    unjudged = (
        (
            f"{len(small)} group(s) with fewer than {shift['min_group_support']} test rows not evaluated "
            f"({', '.join(f'{g}: {n}' for g, n in list(small.items())[:5])}{', ...' if len(small) > 5 else ''})"
        )
        if small
        else ""
    )
    if len(shift["groups"]) < 2:
        return _finding(
            "bias_amplification",
            "not_evaluated",
            [],
            f"Not evaluated: fewer than two groups have {shift['min_group_support']} or more test rows"
            + (f"; {unjudged}" if unjudged else "")
            + ". Collect more rows per group, or merge rare groups.",
            counted=True,
        )
    evidence: list[Evidence] = []
    flags: list[str] = []
    checks = (
        ("parity_drop", "relative_parity_drop", t["max_relative_parity_drop"]),
        ("widening", "group_accuracy_gap_increase", t["max_group_accuracy_gap_increase"]),
        ("loss_spread", "group_loss_spread", t["max_group_loss_spread"]),
    )
    for key, metric, threshold in checks:
        value, interval = shift[key], shift[key + "_interval"]
        if value is None or interval is None:
            continue
        evidence.append(
            Evidence(
                metric=metric,
                value=round(value, 6),
                threshold=threshold,
                comparison=f"detected if value > threshold and its bootstrap interval over rows "
                f"[{interval[0]:+.3f}, {interval[1]:+.3f}] lies above 0",
            )
        )
        if value > threshold and interval[0] > 0 and (key != "loss_spread" or shift["widening"] >= 0):
            flags.append(f"{metric.replace('_', ' ')} {value:.3f} (interval [{interval[0]:+.3f}, {interval[1]:+.3f}])")
    student, teacher = shift["student_group_accuracy"], shift["teacher_group_accuracy"]
    hardest = max(student, key=lambda g: teacher[g] - student[g])
    suffix = f" ({unjudged})" if unjudged else ""
    if flags:
        return _finding(
            "bias_amplification",
            "detected",
            evidence,
            f"Compression amplified the bias beyond noise: {'; '.join(flags)}; group {hardest} went from "
            f"{teacher[hardest]:.3f} to {student[hardest]:.3f}{suffix}.",
            counted=True,
        )
    return _finding(
        "bias_amplification",
        "clear",
        evidence,
        f"Demographic parity and per-group accuracy over {len(student)} groups are within tolerance of the "
        f"teacher's, or differ only within noise{suffix}.",
        counted=True,
    )


# summary fields that the raw arrays also yield; a given number wins, and mixing them is warned about
_COMPUTABLE = (
    "overall_accuracy",
    "per_class_accuracy",
    "class_support",
    "student_error_confidence",
    "teacher_error_confidence",
    "student_parity_ratio",
    "teacher_parity_ratio",
    "student_group_accuracy",
    "teacher_group_accuracy",
)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        items = list(value.items())
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in items[:3]) + (", ..." if len(items) > 3 else "") + "}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _mixed_warning(
    request: DiagnoseFailureRequest, computed: ComputedMetrics | None, from_the_run: set[str] | None = None
) -> AdviceWarning | None:
    """Summary numbers given beside raw arrays override what the arrays say; show both so a mismatch is seen.
    A run's whole-test-set numbers beside its sampled predictions are one model, not a mix."""
    if computed is None:
        return None
    clashes = [
        (name, getattr(request, name), getattr(computed, name))
        for name in _COMPUTABLE
        if getattr(request, name) is not None
        and getattr(computed, name) is not None
        and name not in (from_the_run or set())
    ]
    if not clashes:
        return None
    parts = [f"{name} {_shown(given)} given, {_shown(derived)} from the arrays" for name, given, derived in clashes]
    return AdviceWarning(
        id="raw_and_summary_mixed",
        message="Raw arrays and summary numbers were mixed; the numbers you gave were used where both exist: "
        + "; ".join(parts)
        + ". Pass one or the other so the diagnosis describes one model.",
        references=["references/failure-modes.md"],
    )


def _missing(findings: list[Finding], request: DiagnoseFailureRequest, raw: bool) -> list[MissingInput]:
    """For each mode left not_evaluated, the request fields that would let it run (the raw arrays when raw was used)."""
    modes = get_rules().failure_modes["modes"]
    missing: list[MissingInput] = []
    for finding in findings:
        if finding.status != "not_evaluated":
            continue
        inputs = modes[finding.id]["inputs"]
        fields = inputs["raw"] if raw and "raw" in inputs else inputs["summary"]
        absent = [f for f in fields if getattr(request, f) is None] or list(fields)
        missing.extend(
            MissingInput(field=f, effect=f"{finding.name} not evaluated: {finding.diagnosis}") for f in absent
        )
    return missing


def _check_overall(request: DiagnoseFailureRequest) -> None:
    """An average lies between its parts: an overall accuracy outside the per-class ones (beyond rounding) is a typo."""
    per_class, overall = request.per_class_accuracy, request.overall_accuracy
    if not per_class or overall is None:
        return
    tolerance = get_rules().failure_modes["modes"]["accuracy_mirage"]["thresholds"]["overall_outside_classes_tolerance"]
    low, high = min(per_class.values()), max(per_class.values())
    if _exact(low - overall) > tolerance or _exact(overall - high) > tolerance:
        raise InputError(
            "overall_accuracy",
            f"is {overall:g} but the per-class accuracies lie between {low:g} and {high:g}; "
            "an overall accuracy is their weighted average, so check both",
        )


def diagnose_failure(request: DiagnoseFailureRequest) -> DiagnoseFailureResponse:
    """Evaluate each failure mode on what is given; a mode without its inputs is not_evaluated, never guessed.
    With from_run, the run folder fills every input it holds first (the caller's numbers win)."""
    from skill.run_evidence import apply_run

    request, run = apply_run(request)
    _check_overall(request)
    try:
        computed, rows = _raw_metrics(request)
    except InputError as exc:
        if run is None or exc.field not in {v.field for v in run.filled}:
            raise
        where = next(v.source for v in run.filled if v.field == exc.field)
        given = {k for k in request.model_fields_set if k not in {v.field for v in run.filled}} - {"from_run"}
        mix = f" beside the {', '.join(sorted(given))} you passed" if given else ""
        raise InputError(
            "from_run",
            f"{run.run_dir}: {exc.field} from {where} (read from the run){mix}: "
            f"{str(exc).removeprefix(exc.field + ': ')}",
        ) from None
    per_class = _pick(request.per_class_accuracy, computed.per_class_accuracy if computed else None)
    support = _pick(request.class_support, computed.class_support if computed else None)
    overall = _pick(request.overall_accuracy, computed.overall_accuracy if computed else None)
    from_the_run = {v.field for v in run.filled} if run else set()
    # counts behind the per-class numbers: computed from rows, or the run's whole-test-set counts
    counted = computed is not None and (request.class_support is None or "class_support" in from_the_run)
    group_fields = ("teacher_parity_ratio", "student_parity_ratio", "teacher_group_accuracy", "student_group_accuracy")
    shift = group_shift(rows) if rows is not None and all(getattr(request, f) is None for f in group_fields) else None
    findings = [
        _accuracy_mirage(per_class, support, overall, counted=counted, names=request.class_names),
        _temperature_blindness(
            _pick(request.student_error_confidence, computed.student_error_confidence if computed else None),
            _pick(request.teacher_error_confidence, computed.teacher_error_confidence if computed else None),
            computed,
            request.training_temperature,
            rows,
        ),
        _capacity_cliff(
            [(p.params, p.accuracy) for p in request.size_accuracy_curve] if request.size_accuracy_curve else None
        ),
        _hierarchical_rigidity(request.student_finds_edge_cases, request.feedback_to_teacher),
        _bias_from_rows(shift)
        if shift is not None
        else _bias_amplification(
            _pick(request.teacher_parity_ratio, computed.teacher_parity_ratio if computed else None),
            _pick(request.student_parity_ratio, computed.student_parity_ratio if computed else None),
            _pick(request.teacher_group_accuracy, computed.teacher_group_accuracy if computed else None),
            _pick(request.student_group_accuracy, computed.student_group_accuracy if computed else None),
        ),
    ]
    missing = _missing(findings, request, raw=computed is not None)
    warnings = [w for w in [_mixed_warning(request, computed, from_the_run)] if w is not None]
    t_risk = get_rules().failure_modes["modes"]["temperature_blindness"]["thresholds"][
        "max_training_temperature_at_risk"
    ]
    if request.training_temperature is not None and request.training_temperature <= t_risk:
        warnings.append(
            AdviceWarning(
                id="trained_at_t1",
                message=(
                    f"Trained at T = {request.training_temperature:g}: soft labels carry little beyond the hard label."
                ),
                references=["references/failure-modes.md#temperature-blindness"],
            )
        )
    detected = [f.id for f in findings if f.status == "detected"]
    return DiagnoseFailureResponse(
        findings=findings,
        detected=detected,
        metrics=computed,
        warnings=warnings,
        missing_inputs=missing,
        next_steps=for_run(run.run_dir, None) if run else steps("gates", "distill") if detected else steps("gates"),
        references=sorted({r for f in findings if f.status == "detected" for r in f.references})
        or ["references/failure-modes.md"],
        run_evidence=run,
    )
