"""Decide whether a request belongs here, to a sibling skill, or nowhere near distillation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from skill.conditions import evaluate
from skill.models import Delegation, RouteRequest, RouteResponse, TraceEntry
from skill.next_steps import steps
from skill.rules import get_rules


def _hits(patterns: Any, text: str) -> list[str]:
    return [p for p in patterns if re.search(p, text, flags=re.IGNORECASE)]


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


def _delegation(skill: str, reason: str, fallback: str) -> Delegation:
    return Delegation(skill=skill, reason=reason, installed=find_installed_skill(skill) is not None, fallback=fallback)


def _answer(verdict: str, reason: str, matched: list[str], trace: list[TraceEntry], entry: Mapping[str, Any] | None = None,
            boundary: str | None = None, extra: list[Delegation] | None = None) -> RouteResponse:
    skill = entry.get("skill") if entry else None
    path = find_installed_skill(skill) if skill else None
    delegations = list(extra or [])
    if skill:
        delegations.insert(0, Delegation(skill=skill, reason=reason, installed=path is not None, fallback=entry["fallback"]))
    return RouteResponse(
        verdict=verdict,
        skill=skill,
        boundary=boundary,
        reason=reason,
        installed=(path is not None) if skill else None,
        installed_path=str(path) if path else None,
        fallback=entry["fallback"] if entry else None,
        matched=matched,
        rule_trace=trace,
        delegations=delegations,
        next_steps=steps("recommend", "alpha") if verdict == "in_scope" else [],
        references=["references/boundaries.md"],
    )


def route_request(request: RouteRequest) -> RouteResponse:
    """Boundaries first (numbers, then words), then siblings against in-scope words; the stronger match wins."""
    rules = get_rules().boundaries
    text = request.request
    inputs = request.model_dump()
    trace: list[TraceEntry] = []
    strong = _hits(rules["strong_in_scope_patterns"], text)
    in_scope = strong + _hits(rules["in_scope_patterns"], text)

    for boundary in rules["boundaries"]:
        numeric = boundary.get("when")
        if numeric is not None and evaluate(numeric, inputs, f"boundary.{boundary['id']}", trace) is True:
            verdict = "delegate" if boundary.get("skill") else "out_of_scope"
            return _answer(verdict, boundary["reason"], [f"{numeric['field']} {numeric['op']} {numeric['value']}"], trace, boundary, boundary["id"])
        words = _hits(boundary["patterns"], text)
        if words:
            verdict = "delegate" if boundary.get("skill") else "out_of_scope"
            return _answer(verdict, boundary["reason"], words, trace, boundary, boundary["id"])

    sibling_hits = [(s, _hits(s["patterns"], text)) for s in rules["siblings"]]
    sibling_hits = [(s, h) for s, h in sibling_hits if h]
    side_notes = [_delegation(s["skill"], s["covers"], s["fallback"]) for s, _ in sibling_hits]
    best = max(sibling_hits, key=lambda item: len(item[1]), default=None)
    if best and not strong and len(best[1]) > len(in_scope):
        sibling, words = best
        return _answer("delegate", sibling["covers"], words, trace, sibling, extra=side_notes[1:] if side_notes else None)
    if in_scope:
        return _answer("in_scope", "The request is about distilling or compressing a model into a smaller one.", in_scope, trace, extra=side_notes)
    return _answer("out_of_scope", "Nothing in the request is about model compression or distillation.", [], trace)
