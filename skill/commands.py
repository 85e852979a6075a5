"""Registry of the advisory functions: name -> (request model, function). The CLI and MCP server read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from skill import models
from skill.alpha import choose_alpha
from skill.diagnose import diagnose_failure
from skill.gates import check_quality_gates
from skill.recommend import recommend_method
from skill.release import ReleaseCheckRequest, release_check
from skill.routing import route_request
from skill.score import score_distillation


@dataclass(frozen=True)
class Command:
    name: str
    request: type[BaseModel]
    run: Callable[..., BaseModel]
    summary: str


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "recommend", models.RecommendMethodRequest, recommend_method, "Choose the distillation method and topology."
        ),
        Command(
            "alpha",
            models.ChooseAlphaRequest,
            choose_alpha,
            "Choose alpha (size vs accuracy priority) for the deployment context.",
        ),
        Command(
            "score",
            models.ScoreDistillationRequest,
            score_distillation,
            "Distillation score of a student, or a ranking of candidates.",
        ),
        Command(
            "diagnose",
            models.DiagnoseFailureRequest,
            diagnose_failure,
            "Diagnose the five failure modes from numbers or raw predictions.",
        ),
        Command(
            "gates", models.QualityGatesRequest, check_quality_gates, "Check the ten quality gates for a plan or a run."
        ),
        Command("route", models.RouteRequest, route_request, "In scope, delegate to a sibling skill, or out of scope."),
        Command(
            "release-check",
            ReleaseCheckRequest,
            release_check,
            "From a finished run folder: the diagnosis, the gates, the score and ship / ship with conditions / do not "
            "ship.",
        ),
    )
}


def run_under(name: str, request: BaseModel, roots: tuple[Path, ...]) -> BaseModel:
    """Run one command with the run folders it reads (from_run, run_dir) confined to `roots`, read-only (a server's
    data and output roots: recipes and their runs are written under the output root)."""
    from skill.run_evidence import RUN_ROOT

    token = RUN_ROOT.set(roots)
    try:
        return COMMANDS[name].run(request)
    finally:
        RUN_ROOT.reset(token)
