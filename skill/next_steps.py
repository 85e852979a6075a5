"""Suggested next calls, one place, so every tool points at the others the same way."""

from __future__ import annotations

from skill.models import NextStep

_STEPS: dict[str, tuple[str, str, str]] = {
    "route": ("kd_route_request", "kd-skill route --request '...'", "Check the request is in scope before planning."),
    "recommend": (
        "kd_recommend_method",
        "kd-skill recommend --task-type classification ...",
        "Pick the method, its hyperparameters and the topology.",
    ),
    "alpha": (
        "kd_choose_alpha",
        "kd-skill alpha --deployment-environment mobile ...",
        "Fix the size-versus-accuracy priority for the score.",
    ),
    "score": (
        "kd_score_distillation",
        "kd-skill score --alpha 0.7 --teacher-size ...",
        "Score the student (or rank candidates) with that alpha.",
    ),
    "distill": (
        "kd_run_quick_distill",
        "kd-skill distill --method auto ...",
        "Run a small real distillation and compare against a from-scratch student.",
    ),
    "diagnose": (
        "kd_diagnose_failure",
        "kd-skill diagnose --per-class-accuracy '{...}' ...",
        "Check the result for the five failure modes.",
    ),
    "gates": (
        "kd_check_quality_gates",
        "kd-skill gates --alpha 0.7 ...",
        "Check the ten release gates before shipping.",
    ),
}


def steps(*names: str) -> list[NextStep]:
    """NextStep entries for the named stages, in the order given."""
    return [NextStep(tool=_STEPS[n][0], cli=_STEPS[n][1], why=_STEPS[n][2]) for n in names]


def for_run(run_dir: str, alpha: float | None) -> list[NextStep]:
    """After a tool read a run folder: the release check on that folder, with the alpha the run used (not an
    example alpha from another plan)."""
    at = f" --alpha {alpha:g}" if alpha is not None else ""
    return [
        NextStep(
            tool="kd_release_check",
            cli=f"kd-skill release-check {run_dir}{at}",
            why=(
                "Diagnosis, gates and score of this run together, and the decision: ship, ship with conditions or do "
                "not ship."
            ),
        )
    ]
