"""Build the answer from a decision: the sibling or boundary it names, whether that sibling skill is installed, what
was read and why, and the next steps. The last stage of routing; it reads the evidence only to show it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skill.models import Delegation, IntentScore, RouteRequest, RouteResponse
from skill.next_steps import steps
from skill.routing.decide import Decision
from skill.routing.evidence import Evidence
from skill.rules import get_rules


def find_installed_skill(name: str, cwd: Path | None = None, home: Path | None = None) -> Path | None:
    """Path of `<folder>/<name>/SKILL.md` in the usual skills folders, or None."""
    cwd = cwd or Path.cwd()
    home = home or Path.home()
    for folder in get_rules().boundaries["skills_folders"]:
        base = home / folder[2:] if folder.startswith("~/") else cwd / folder
        candidate = base / name / "SKILL.md"
        if candidate.is_file():
            return candidate
    return None


def _intents(ev: Evidence) -> list[IntentScore]:
    listed = [
        IntentScore(intent=o, score=round(ev.scores.get(o, 0.0), 2), evidence=[h.describe() for h in hits])
        for o, hits in ev.hits.items()
        if hits
    ]
    return sorted(listed, key=lambda i: -i.score)


def answer(request: RouteRequest, decision: Decision, ev: Evidence, rules: Mapping[str, Any]) -> RouteResponse:
    """The response the tool returns: verdict, target, reasons, the evidence read, and the delegations."""
    entry: Mapping[str, Any] = decision.entry or {}  # empty for in scope
    skill = entry.get("skill")
    path = find_installed_skill(skill) if skill else None
    reason = (entry.get("covers") or entry["reason"]) if entry else rules["in_scope"]["reason"]
    delegations: list[Delegation] = []
    if skill:
        delegations.append(
            Delegation(skill=skill, reason=reason, installed=path is not None, fallback=entry["fallback"])
        )
    if decision.verdict == "in_scope":  # a true mix: the sibling's part of the work is handed over
        for sibling in rules["siblings"]:
            if ev.scores.get(sibling["skill"], 0) > 0:
                delegations.append(
                    Delegation(
                        skill=sibling["skill"],
                        reason=sibling["covers"],
                        installed=find_installed_skill(sibling["skill"]) is not None,
                        fallback=sibling["fallback"],
                    )
                )
    matched = [h.words for hits in ev.hits.values() for h in hits if h.counts]
    matched += [
        f"{name} {value:g} ({'given' if getattr(request, name) is not None else 'from the text'})"
        for name, value in decision.inputs.items()
        if value is not None
    ]
    return RouteResponse(
        verdict=decision.verdict,
        skill=skill,
        boundary=entry.get("id"),
        reason=reason,
        installed=(path is not None) if skill else None,
        installed_path=str(path) if path else None,
        fallback=entry["fallback"] if entry else None,
        confidence=decision.confidence,
        question=decision.question,
        decided_by=decision.decided_by,
        warnings=decision.warnings,
        learned_reading=(
            f"{decision.reading.label} ({decision.reading.probability:.2f}; next {decision.reading.runner_up} "
            f"{decision.reading.runner_up_probability:.2f})"
        )
        if decision.reading
        else None,
        intents=_intents(ev),
        matched=matched,
        rule_trace=decision.trace,
        delegations=delegations,
        next_steps=steps("recommend", "alpha") if decision.verdict == "in_scope" else [],
        references=["references/boundaries.md"],
    )
