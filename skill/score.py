"""Score one student, or rank candidates, with the distillation score."""

from __future__ import annotations

import math

from skill.conditions import fire_warnings
from skill.errors import InputError
from skill.metrics import distillation_score
from skill.models import (
    AdviceWarning,
    Candidate,
    MissingInput,
    ScoredCandidate,
    ScoreDistillationRequest,
    ScoreDistillationResponse,
    TraceEntry,
)
from skill.next_steps import for_run, steps
from skill.rules import get_rules

_REF = "references/alpha-and-score.md#distillation-score"


def _interpret(score: float, size_term: float, accuracy_term: float, alpha: float) -> str:
    if score < 0:
        head = f"DS {score:.4f} is negative: the student is more accurate than the teacher by more than its size costs."
    else:
        larger = "size" if size_term >= accuracy_term else "accuracy loss"
        head = (
            f"DS {score:.4f} (lower is better); the {larger} term dominates ({size_term:.4f} size, {accuracy_term:.4f} "
            "accuracy)."
        )
    return (
        head
        + f" Compare DS values only at the same alpha (this is alpha {alpha:g}): a different alpha changes both terms."
    )


def _floor_warnings(
    request: ScoreDistillationRequest, ranking: list[ScoredCandidate]
) -> tuple[list[AdviceWarning], list[MissingInput]]:
    """The accuracy floor: who is below it, or, without one, whether DS picked a student that lost too much accuracy."""
    assert request.teacher_accuracy is not None  # checked by score_distillation (from_run may have supplied it)
    floor = request.min_student_accuracy
    if floor is None:
        share = get_rules().score["low_accuracy_share"]
        missing = [
            MissingInput(
                field="min_student_accuracy",
                effect="students below the accuracy floor would be marked and ranked after "
                "every student that meets it; DS alone rewards size without limit",
            )
        ]
        best = ranking[0]
        if best.accuracy < share * request.teacher_accuracy:
            return [
                AdviceWarning(
                    id="low_accuracy_winner",
                    references=[_REF],
                    message=(
                        f"The best-scored student ({best.name}, accuracy {best.accuracy:g}) keeps less than {share:g} "
                        f"of the teacher's accuracy ({request.teacher_accuracy:g}); DS ranks it on size. Pass "
                        "min_student_accuracy (the guidance keeps accuracy above 0.9) so students below the floor "
                        "rank last."
                    ),
                )
            ], missing
        return [], missing
    warnings = []
    below = [c.name for c in ranking if not c.meets_accuracy_floor]
    if below and not request.candidates:
        warnings.append(
            AdviceWarning(
                id="below_accuracy_floor",
                references=[_REF],
                message=(
                    f"The student's accuracy {ranking[0].accuracy:g} is below the accuracy floor {floor:g} "
                    "(min_student_accuracy): whatever its DS, it does not meet the requirement."
                ),
            )
        )
    elif below:
        none_meet = " No student meets it; the ranking is by DS alone." if len(below) == len(ranking) else ""
        shown = ", ".join(below[:5]) + (f" and {len(below) - 5} more" if len(below) > 5 else "")
        warnings.append(
            AdviceWarning(
                id="below_accuracy_floor",
                references=[_REF],
                message=(
                    f"Below the accuracy floor {floor:g}: {shown}; ranked after every student that meets it.{none_meet}"
                ),
            )
        )
    if floor > request.teacher_accuracy:
        warnings.append(
            AdviceWarning(
                id="floor_above_teacher",
                references=[_REF],
                message=(
                    f"The accuracy floor {floor:g} is above the teacher's accuracy {request.teacher_accuracy:g}; a "
                    "student rarely beats its teacher, so check the floor or the teacher's number."
                ),
            )
        )
    return warnings, []


def score_distillation(request: ScoreDistillationRequest) -> ScoreDistillationResponse:
    """DS for one student, or every candidate ranked best first.

    Candidates meeting the accuracy floor come first, then by DS (ties keep input order). With from_run, the run
    folder supplies alpha (the plan's), sizes in parameters and accuracies (the caller's values win).
    """
    from skill.run_evidence import apply_run

    request, run = apply_run(request)
    if request.alpha is None or request.teacher_size is None or request.teacher_accuracy is None:
        absent = [n for n in ("alpha", "teacher_size", "teacher_accuracy") if getattr(request, n) is None]
        raise InputError(
            absent[0],
            "is required: the run does not supply it" + (f" ({run.missing[0].effect})" if run and run.missing else ""),
        )
    candidates = request.candidates or [
        Candidate(name="student", size=request.student_size or 0, accuracy=request.student_accuracy or 0)
    ]
    floor = request.min_student_accuracy
    scored = []
    for c in candidates:
        score, size_term, accuracy_term = distillation_score(
            request.alpha, c.size, request.teacher_size, c.accuracy, request.teacher_accuracy
        )
        if not all(math.isfinite(x) for x in (score, size_term, accuracy_term)):  # JSON has no Infinity
            field, ratio = (
                ("teacher_size", f"{c.size:g} vs {request.teacher_size:g}")
                if not math.isfinite(size_term)
                else ("teacher_accuracy", f"{c.accuracy:g} vs {request.teacher_accuracy:g}")
            )
            raise InputError(
                field, f"student and teacher ({ratio}) are too far apart for a finite score; check the units"
            )
        scored.append((score, size_term, accuracy_term, c, None if floor is None else c.accuracy >= floor))
    scored.sort(key=lambda item: (item[4] is False, item[0]))
    ranking = [
        ScoredCandidate(
            rank=i + 1,
            name=c.name,
            size=c.size,
            accuracy=c.accuracy,
            score=s,
            size_term=st,
            accuracy_term=at,
            meets_accuracy_floor=meets,
        )
        for i, (s, st, at, c, meets) in enumerate(scored)
    ]
    best = ranking[0]
    trace: list[TraceEntry] = []
    warnings = fire_warnings(get_rules().score["warnings"], {"alpha": request.alpha}, "score", trace)
    floor_warnings, missing = _floor_warnings(request, ranking)
    warnings += floor_warnings
    if any(c.size > request.teacher_size for c in candidates):
        warnings.append(
            AdviceWarning(
                id="student_larger_than_teacher", message="A student is larger than the teacher; check the size units."
            )
        )
    return ScoreDistillationResponse(
        score=best.score,
        size_term=best.size_term,
        accuracy_term=best.accuracy_term,
        formula=get_rules().score["formula"],
        ranking=ranking if request.candidates else None,
        interpretation=_interpret(best.score, best.size_term, best.accuracy_term, request.alpha),
        rule_trace=trace,
        warnings=warnings,
        missing_inputs=missing,
        next_steps=for_run(run.run_dir, request.alpha) if run else steps("diagnose", "gates"),
        references=["references/alpha-and-score.md#distillation-score"],
        run_evidence=run,
    )
