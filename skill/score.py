"""Score one student, or rank candidates, with the distillation score."""

from __future__ import annotations

import math

from skill.errors import InputError
from skill.metrics import distillation_score
from skill.models import AdviceWarning, Candidate, ScoreDistillationRequest, ScoreDistillationResponse, ScoredCandidate
from skill.next_steps import steps
from skill.rules import get_rules


def _interpret(score: float, size_term: float, accuracy_term: float) -> str:
    if score < 0:
        return f"DS {score:.4f} is negative: the student is more accurate than the teacher by more than its size costs."
    larger = "size" if size_term >= accuracy_term else "accuracy loss"
    return f"DS {score:.4f} (lower is better); the {larger} term dominates ({size_term:.4f} size, {accuracy_term:.4f} accuracy)."


def score_distillation(request: ScoreDistillationRequest) -> ScoreDistillationResponse:
    """DS for one student, or every candidate ranked best first (ties keep input order)."""
    candidates = request.candidates or [
        Candidate(name="student", size=request.student_size or 0, accuracy=request.student_accuracy or 0)
    ]
    scored = []
    for c in candidates:
        score, size_term, accuracy_term = distillation_score(request.alpha, c.size, request.teacher_size, c.accuracy, request.teacher_accuracy)
        if not all(math.isfinite(x) for x in (score, size_term, accuracy_term)):  # JSON has no Infinity
            raise InputError("teacher_size", f"the sizes ({c.size:g} vs {request.teacher_size:g}) or accuracies ({c.accuracy:g} vs "
                             f"{request.teacher_accuracy:g}) are too far apart for a finite score; check the units")
        scored.append((score, size_term, accuracy_term, c))
    scored.sort(key=lambda item: item[0])
    ranking = [
        ScoredCandidate(rank=i + 1, name=c.name, size=c.size, accuracy=c.accuracy, score=s, size_term=st, accuracy_term=at)
        for i, (s, st, at, c) in enumerate(scored)
    ]
    best = ranking[0]
    warnings = []
    if any(c.size > request.teacher_size for c in candidates):

        warnings.append(AdviceWarning(id="student_larger_than_teacher", message="A student is larger than the teacher; check the size units."))
    return ScoreDistillationResponse(
        score=best.score,
        size_term=best.size_term,
        accuracy_term=best.accuracy_term,
        formula=get_rules().score["formula"],
        ranking=ranking if request.candidates else None,
        interpretation=_interpret(best.score, best.size_term, best.accuracy_term),
        warnings=warnings,
        next_steps=steps("diagnose", "gates"),
        references=["references/alpha-and-score.md#distillation-score"],
    )
