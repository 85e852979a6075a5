"""Decide whether a request belongs here, to a sibling skill, or nowhere near distillation.

The decision follows what the request asks to be done (skill/route_reading.py scores it), in this order:
structured inputs the agent filled; not-for boundaries named by words or numbers; a sibling's work when no
explicit distillation is asked for and it outscores ours; the prototype and ample-compute boundaries when no
budget is stated; otherwise in scope when anything asks for distillation, else not about an ML model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from skill.conditions import evaluate
from skill.models import Delegation, IntentScore, RouteRequest, RouteResponse, TraceEntry
from skill.next_steps import steps
from skill.route_numbers import Quantity, find_reduction, read_numbers
from skill.route_reading import Hit, Reader, group_score
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


@dataclass
class Evidence:
    """Everything read from the text: hits per intent, their scores, numbers, and what kind of context was seen."""

    hits: dict[str, list[Hit]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    numbers: list[Quantity] = field(default_factory=list)
    action: bool = False  # an explicit request to distil counted
    budget: bool = False  # a size or latency budget is stated
    ml_context: bool = False

    def counted(self, owner: str) -> list[Hit]:
        return [h for h in self.hits.get(owner, []) if h.counts]

    def unsure_only(self, *owners: str) -> bool:
        counted = [h for owner in owners for h in self.counted(owner)]
        return bool(counted) and all(h.status == "unsure" for h in counted)


def _score(reader: Reader, ev: Evidence, owner: str, groups: Any, role: str) -> None:
    for group in groups:
        hits = reader.find(owner, group, group.get("role", role))
        ev.hits.setdefault(owner, []).extend(hits)
        ev.scores[owner] = ev.scores.get(owner, 0.0) + group_score(hits)


def read_evidence(text: str, rules: Mapping[str, Any], ml_known: bool = False) -> Evidence:
    """Score every intent's term groups; ml_known (the agent says it is a machine-learning model) settles every word's sense."""
    reader = Reader(text, rules, ml_known)
    ev = Evidence(ml_context=bool(reader.ml_words))
    _score(reader, ev, "in_scope", rules["in_scope"]["groups"], "goal")
    _score(reader, ev, "budget", [rules["budget"]], "budget")
    ev.numbers = [q for q in read_numbers(reader.text, rules) if not reader.negated_by(q.start)]  # "50 ms, not 5 ms"
    for quantity in ev.numbers:
        if (quantity.kind == "latency_ms" and not quantity.current) or (quantity.kind == "size_mb" and quantity.target):
            group = {"id": "stated_budget", "weight": rules["budget"]["weight"], "context": "ml"}
            hit = reader.hit("budget", group, "budget", quantity.start, quantity.start + len(quantity.words))
            ev.hits["budget"].append(hit)
            ev.scores["budget"] = max(ev.scores["budget"], group_score([hit]))
    reduction = find_reduction(reader.text, rules)
    if reduction:
        group = {"id": "size_reduction", "weight": rules["numbers"]["reduction_weight"], "context": "ml"}
        hit = reader.hit("in_scope", group, "goal", reduction[0], reduction[0] + len(reduction[1]))
        ev.hits["in_scope"].append(hit)
        ev.scores["in_scope"] += group_score([hit])
    _drop_lone_descriptors(ev)
    ev.budget = ev.scores["budget"] > 0
    ev.scores["in_scope"] += ev.scores["budget"]
    for boundary in rules["boundaries"]:
        _score(reader, ev, boundary["id"], boundary.get("groups", []), "boundary")
    for sibling in rules["siblings"]:
        _score(reader, ev, sibling["skill"], sibling["groups"], "sibling")
    # an explicit "distil" is the ask unless it is put off or done, or a sibling's work stands in a weightier phrase
    # ("we'd distil it, but first we need SHAP")
    stressed = max((reader.text.phrase(h.start).weight for s in rules["siblings"] for h in ev.counted(s["skill"])), default=0.0)
    ev.action = any(h.role == "action" and not h.deferred and (stressed <= 1 or reader.text.phrase(h.start).weight >= stressed) for h in ev.counted("in_scope"))
    return ev


def _drop_lone_descriptors(ev: Evidence) -> None:
    """With no machine-learning word anywhere, a goal or a role word alone is a guess: "shrink my jeans", "my student
    visa". It still counts when the text states a size, latency or ratio ("must fit in 40 MB", "16x compression"), names
    a teacher and a student together, combines two kinds of evidence ("student ... too small"), or asks to distil."""
    counted = ev.counted("in_scope")
    if not counted or not all(h.status == "unsure" for h in counted) or any(h.role == "action" for h in counted):
        return
    roles = {h.words.lower().rstrip("s") for h in counted if h.role == "descriptor"}
    groups = {h.group for h in counted}
    stated = any(q.kind in ("latency_ms", "size_mb") for q in ev.numbers) or any(any(c.isdigit() for c in h.words) for h in counted)
    if len(roles) >= 2 or len(groups) >= 2 or stated:
        return
    note = "no word says machine learning, and nothing else supports it"
    ev.hits["in_scope"] = [replace(h, weight=0.0, status="no_ml_word", why=note) if h.counts else h for h in ev.hits["in_scope"]]
    ev.scores["in_scope"] = 0.0


@dataclass
class Decision:
    verdict: str
    entry: Mapping[str, Any] | None  # the boundary or sibling rule, None for in scope
    decided_by: str
    confidence: str = "high"
    question: str | None = None
    trace: list[TraceEntry] = field(default_factory=list)


def _text_inputs(request: RouteRequest, ev: Evidence) -> dict[str, Any]:
    """Structured inputs first; otherwise the model's size (the largest count) and the tightest stated latency budget."""
    params = [q.value for q in ev.numbers if q.kind == "params"]
    budgets = [q.value for q in ev.numbers if q.kind == "latency_ms" and not q.current]
    return {
        "model_params": request.model_params if request.model_params is not None else (max(params) if params else None),
        "latency_budget_ms": request.latency_budget_ms if request.latency_budget_ms is not None else (min(budgets) if budgets else None),
    }


def _numeric_boundaries(rules: Mapping[str, Any], inputs: Mapping[str, Any], trace: list[TraceEntry]) -> list[Mapping[str, Any]]:
    return [b for b in rules["boundaries"] if b.get("when") and evaluate(b["when"], inputs, f"boundary.{b['id']}", trace) is True]


def _compare(trace: list[TraceEntry], winner: str, score: float, runner: str, other: float, op: str = "ge") -> None:
    result = score >= other if op == "ge" else score > other
    trace.append(TraceEntry(rule="route.scores", field=f"score.{winner}", op=op, value=round(score, 2), threshold=f"{round(other, 2)} (score.{runner})", result="true" if result else "false"))


def _by_goal(request: RouteRequest, rules: Mapping[str, Any], ev: Evidence, inputs: Mapping[str, Any]) -> Decision | None:
    """The agent's structured inputs decide before the text does."""
    boundaries = {b["id"]: b for b in rules["boundaries"]}
    if request.is_ml_model is False:
        return Decision("out_of_scope", boundaries["not_ml"], "is_ml_model is false")
    goal = request.primary_goal
    if goal is None:
        return None
    for sibling in rules["siblings"]:
        if sibling["goal"] == goal:
            return Decision("delegate", sibling, f"primary_goal is {goal}")
    for boundary in rules["boundaries"]:
        if boundary["goal"] == goal:
            return Decision("delegate" if boundary.get("skill") else "out_of_scope", boundary, f"primary_goal is {goal}")
    trace: list[TraceEntry] = []
    for boundary in _numeric_boundaries(rules, inputs, trace):
        return Decision("delegate" if boundary.get("skill") else "out_of_scope", boundary, f"primary_goal is distill, but {boundary['when']['field']} is {boundary['when']['op']} {boundary['when']['value']}", trace=trace)
    absence = _absence_boundary(request, rules, ev)
    if absence:
        return Decision("out_of_scope", absence, f"primary_goal is distill, but {absence['id']} applies and no budget is stated", trace=trace)
    return Decision("in_scope", None, "primary_goal is distill", trace=trace)


def _absence_boundary(request: RouteRequest, rules: Mapping[str, Any], ev: Evidence) -> Mapping[str, Any] | None:
    """Prototype, then ample compute: each applies only while no size or latency budget exists."""
    budget = request.has_size_or_latency_budget if request.has_size_or_latency_budget is not None else ev.budget
    if budget:
        return None
    for boundary in rules["boundaries"]:
        if not boundary.get("suppressed_by_budget"):
            continue
        stated = request.is_prototype if boundary["id"] == "prototype_without_requirements" and request.is_prototype is not None else ev.scores[boundary["id"]] > 0
        if stated:
            return boundary
    return None


def _by_text(request: RouteRequest, rules: Mapping[str, Any], ev: Evidence, inputs: Mapping[str, Any]) -> Decision:
    trace: list[TraceEntry] = []
    questions = rules["questions"]
    close = float(rules["close_margin"])  # a winner less than this far ahead is a close call: say so and ask
    scores = dict(ev.scores)
    word_boundaries = [b for b in rules["boundaries"] if b.get("groups") and not b.get("suppressed_by_budget")]
    for boundary in _numeric_boundaries(rules, inputs, trace):
        if scores[boundary["id"]] == 0 and any(scores[s["skill"]] > 0 for s in rules["siblings"]):
            continue  # a number alone does not take a sibling's explicit work ("NAS for a 2 ms target")
        scores[boundary["id"]] += float(boundary["groups"][0]["weight"])  # a number states the boundary as firmly as its words
    for boundary in word_boundaries:
        when = boundary.get("when")
        if when and getattr(request, when["field"]) is not None and not evaluate(when, inputs, f"boundary.{boundary['id']}", []):
            scores[boundary["id"]] = 0.0  # the agent's number says the boundary does not hold, whatever the words
    best_boundary = max(word_boundaries, key=lambda b: scores[b["id"]])
    best_sibling = max(rules["siblings"], key=lambda s: scores[s["skill"]])
    b_score, s_score, in_score = scores[best_boundary["id"]], scores[best_sibling["skill"]], scores["in_scope"]

    if b_score > 0 and b_score >= s_score:
        _compare(trace, best_boundary["id"], b_score, best_sibling["skill"], s_score)
        verdict = "delegate" if best_boundary.get("skill") else "out_of_scope"
        return Decision(verdict, best_boundary, f"boundary {best_boundary['id']} (score {b_score:g}) is named and no sibling outscores it", trace=trace)
    if s_score > 0 and not ev.action and s_score >= in_score:
        _compare(trace, best_sibling["skill"], s_score, "in_scope", in_score)
        decision = Decision("delegate", best_sibling, f"{best_sibling['skill']} (score {s_score:g}) asked for, no explicit distillation (in_scope {in_score:g})", trace=trace)
        if s_score - in_score < close:
            decision.confidence, decision.question = "medium", questions["close_call"].format(covers=best_sibling["covers"].lower())
        return decision
    absence = _absence_boundary(request, rules, ev)
    if absence and (in_score > 0 or not ev.budget):
        return Decision("out_of_scope", absence, f"{absence['id']} is stated and no size or latency budget is", trace=trace)
    if in_score > 0:
        how = "an explicit distillation request" if ev.action else f"in_scope score {in_score:g} over the siblings' {s_score:g}"
        _compare(trace, "in_scope", in_score, best_sibling["skill"], s_score, "ge" if ev.action else "gt")
        decision = Decision("in_scope", None, how, trace=trace)
        if ev.unsure_only("in_scope", "budget"):
            decision.confidence, decision.question = "low", questions["no_context"]
        elif s_score > 0 and in_score - s_score < close:
            decision.confidence, decision.question = "medium", questions["close_call"].format(covers=best_sibling["covers"].lower())
        elif not ev.action and in_score < close:
            decision.confidence, decision.question = "medium", questions["nothing_found"]
        return decision
    not_ml = next(b for b in rules["boundaries"] if b["id"] == "not_ml")
    decision = Decision("out_of_scope", not_ml, "nothing asks for distillation, a sibling's work or a boundary", trace=trace)
    if ev.ml_context:
        decision.confidence, decision.question = "low", questions["nothing_found"]
    elif any(h.status == "no_ml_word" for h in ev.hits.get("in_scope", [])):
        decision.confidence, decision.question = "low", questions["no_context"]  # "student" alone: a person or a model?
    return decision


def _intents(ev: Evidence) -> list[IntentScore]:
    listed = [IntentScore(intent=o, score=round(ev.scores.get(o, 0.0), 2), evidence=[h.describe() for h in hits]) for o, hits in ev.hits.items() if hits]
    return sorted(listed, key=lambda i: -i.score)


def _answer(decision: Decision, ev: Evidence, rules: Mapping[str, Any], inputs: Mapping[str, Any], given: Mapping[str, Any]) -> RouteResponse:
    entry = decision.entry
    skill = entry.get("skill") if entry else None
    path = find_installed_skill(skill) if skill else None
    reason = (entry.get("covers") or entry["reason"]) if entry else rules["in_scope"]["reason"]
    delegations = []
    if skill:
        delegations.append(Delegation(skill=skill, reason=reason, installed=path is not None, fallback=entry["fallback"]))
    if decision.verdict == "in_scope":  # a true mix: the sibling's part of the work is handed over
        for sibling in rules["siblings"]:
            if ev.scores.get(sibling["skill"], 0) > 0:
                delegations.append(Delegation(skill=sibling["skill"], reason=sibling["covers"], installed=find_installed_skill(sibling["skill"]) is not None, fallback=sibling["fallback"]))
    matched = [h.words for hits in ev.hits.values() for h in hits if h.counts]
    matched += [f"{name} {value:g} ({'given' if given.get(name) is not None else 'from the text'})" for name, value in inputs.items() if value is not None]
    return RouteResponse(
        verdict=decision.verdict,  # type: ignore[arg-type]
        skill=skill,
        boundary=entry.get("id") if entry else None,
        reason=reason,
        installed=(path is not None) if skill else None,
        installed_path=str(path) if path else None,
        fallback=entry["fallback"] if entry else None,
        confidence=decision.confidence,  # type: ignore[arg-type]
        question=decision.question,
        decided_by=decision.decided_by,
        intents=_intents(ev),
        matched=matched,
        rule_trace=decision.trace,
        delegations=delegations,
        next_steps=steps("recommend", "alpha") if decision.verdict == "in_scope" else [],
        references=["references/boundaries.md"],
    )


def route_request(request: RouteRequest) -> RouteResponse:
    """In scope, a sibling skill, or a not-for boundary, decided by what the request asks to be done."""
    rules = get_rules().boundaries
    ev = read_evidence(request.request, rules, ml_known=request.is_ml_model is True)
    inputs = _text_inputs(request, ev)
    decision = _by_goal(request, rules, ev, inputs) or _by_text(request, rules, ev, inputs)
    return _answer(decision, ev, rules, inputs, request.model_dump())
