"""Decide, over the evidence, whether a request belongs here, to a sibling skill, or nowhere near distillation.

The decision follows what the request asks to be done (evidence.py has read it), in this order: structured inputs
the agent filled; not-for boundaries named by words or numbers; a sibling's work when no explicit distillation is
asked for and it outscores ours; the prototype and ample-compute boundaries when no budget is stated; otherwise in
scope when anything asks for distillation, else not about an ML model. A text-only decision then meets the learned
reader's reading: when it reads the request otherwise with high probability, its reading stands, and the answer says
so. Nothing here reads the text: every word and number arrives as evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skill.conditions import evaluate
from skill.models import AdviceWarning, RouteConfidence, RouteRequest, RouteVerdict, TraceEntry
from skill.routing.evidence import Evidence
from skill.routing.learned import Reading, outcome_label, outcomes


@dataclass
class Decision:
    verdict: RouteVerdict
    entry: Mapping[str, Any] | None  # the boundary or sibling rule, None for in scope
    decided_by: str
    confidence: RouteConfidence = "high"
    question: str | None = None
    trace: list[TraceEntry] = field(default_factory=list)
    reading: Reading | None = None
    firm: str | None = None  # why the learned reader may not override (it does not read numbers)
    warnings: list[AdviceWarning] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)  # the numbers the numeric boundaries compared

    @property
    def label(self) -> str:
        """The outcome as the learned reader names it."""
        entry = self.entry or {}
        return outcome_label(self.verdict, entry.get("skill"), entry.get("id"))


def _inputs(request: RouteRequest, ev: Evidence) -> dict[str, Any]:
    """Structured inputs first; otherwise the model's size and the tightest latency budget the text states."""
    params, latency = request.model_params, request.latency_budget_ms
    return {
        "model_params": params if params is not None else ev.model_params,
        "latency_budget_ms": latency if latency is not None else ev.latency_budget_ms,
    }


def _numeric_boundaries(
    rules: Mapping[str, Any], inputs: Mapping[str, Any], trace: list[TraceEntry]
) -> list[Mapping[str, Any]]:
    return [
        b
        for b in rules["boundaries"]
        if b.get("when") and evaluate(b["when"], inputs, f"boundary.{b['id']}", trace) is True
    ]


def _compare(trace: list[TraceEntry], winner: str, score: float, runner: str, other: float, op: str = "ge") -> None:
    result = score >= other if op == "ge" else score > other
    trace.append(
        TraceEntry(
            rule="route.scores",
            field=f"score.{winner}",
            op=op,
            value=round(score, 2),
            threshold=f"{round(other, 2)} (score.{runner})",
            result="true" if result else "false",
        )
    )


def _by_goal(
    request: RouteRequest, rules: Mapping[str, Any], ev: Evidence, inputs: Mapping[str, Any]
) -> Decision | None:
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
            return Decision(
                "delegate" if boundary.get("skill") else "out_of_scope", boundary, f"primary_goal is {goal}"
            )
    trace: list[TraceEntry] = []
    for boundary in _numeric_boundaries(rules, inputs, trace):
        return Decision(
            "delegate" if boundary.get("skill") else "out_of_scope",
            boundary,
            f"primary_goal is distill, but {boundary['when']['field']} is {boundary['when']['op']} "
            f"{boundary['when']['value']}",
            trace=trace,
        )
    absence = _absence_boundary(request, rules, ev)
    if absence:
        return Decision(
            "out_of_scope",
            absence,
            f"primary_goal is distill, but {absence['id']} applies and no budget is stated",
            trace=trace,
        )
    return Decision("in_scope", None, "primary_goal is distill", trace=trace)


def _absence_boundary(request: RouteRequest, rules: Mapping[str, Any], ev: Evidence) -> Mapping[str, Any] | None:
    """Prototype, then ample compute: each applies only while no size or latency budget exists."""
    budget = request.has_size_or_latency_budget if request.has_size_or_latency_budget is not None else ev.budget
    if budget:
        return None
    for boundary in rules["boundaries"]:
        if not boundary.get("suppressed_by_budget"):
            continue
        stated = (
            request.is_prototype
            if boundary["id"] == "prototype_without_requirements" and request.is_prototype is not None
            else ev.scores[boundary["id"]] > 0
        )
        if stated:
            return boundary
    return None


@dataclass
class _Standing:
    """The text's scores once the numbers have spoken, the best-scored boundary and sibling, and the trace so far."""

    scores: dict[str, float]
    boundary: Mapping[str, Any]
    sibling: Mapping[str, Any]
    trace: list[TraceEntry]

    @property
    def boundary_score(self) -> float:
        return self.scores[self.boundary["id"]]

    @property
    def sibling_score(self) -> float:
        return self.scores[self.sibling["skill"]]

    @property
    def in_score(self) -> float:
        return self.scores["in_scope"]


def _standing(request: RouteRequest, rules: Mapping[str, Any], ev: Evidence, inputs: Mapping[str, Any]) -> _Standing:
    """Weigh the numbers into the text's scores: a number past a boundary's threshold states it as firmly as its
    words; the agent's number saying a boundary does not hold cancels its words."""
    trace: list[TraceEntry] = []
    scores = dict(ev.scores)
    word_boundaries = [b for b in rules["boundaries"] if b.get("groups") and not b.get("suppressed_by_budget")]
    for boundary in _numeric_boundaries(rules, inputs, trace):
        if scores[boundary["id"]] == 0 and any(scores[s["skill"]] > 0 for s in rules["siblings"]):
            continue  # a number alone does not take a sibling's explicit work ("NAS for a 2 ms target")
        scores[boundary["id"]] += float(
            boundary["groups"][0]["weight"]
        )  # a number states the boundary as firmly as its words
    for boundary in word_boundaries:
        when = boundary.get("when")
        if (
            when
            and getattr(request, when["field"]) is not None
            and not evaluate(when, inputs, f"boundary.{boundary['id']}", [])
        ):
            scores[boundary["id"]] = 0.0  # the agent's number says the boundary does not hold, whatever the words
    return _Standing(
        scores,
        max(word_boundaries, key=lambda b: scores[b["id"]]),
        max(rules["siblings"], key=lambda s: scores[s["skill"]]),
        trace,
    )


def _named_boundary(st: _Standing, ev: Evidence) -> Decision | None:
    """A not-for boundary named (in words or by a number) that no sibling outscores."""
    b_score, s_score = st.boundary_score, st.sibling_score
    if not (b_score > 0 and b_score >= s_score):
        return None
    _compare(st.trace, st.boundary["id"], b_score, st.sibling["skill"], s_score)
    decision = Decision(
        "delegate" if st.boundary.get("skill") else "out_of_scope",
        st.boundary,
        f"boundary {st.boundary['id']} (score {b_score:g}) is named and no sibling outscores it",
        trace=st.trace,
    )
    if b_score > ev.scores[st.boundary["id"]]:
        decision.firm = f"a number in the text puts it past the {st.boundary['id']} threshold"
    return decision


def _sibling_work(
    st: _Standing, ev: Evidence, rules: Mapping[str, Any], absence: Mapping[str, Any] | None
) -> Decision | None:
    """A sibling's work asked for with no explicit distillation, unless its words are a guess or a not-for boundary
    answers the question more firmly."""
    s_score, in_score = st.sibling_score, st.in_score
    # a word that only describes the object ("the student", "my distilled model") does not pull a sibling's work here
    described = max((h.weight for h in ev.counted("in_scope") if h.role == "descriptor"), default=0.0)
    # a sibling's word with nothing saying machine learning and no model in sight ("shrink the Kubernetes cluster")
    # is a guess
    guess = ev.unsure_only(st.sibling["skill"]) and not any(h.role == "descriptor" for h in ev.hits.get("in_scope", []))
    # "idle cards serve our one model; no memory or latency constraints: should I bother?": with no budget, a not-for
    # boundary stated more firmly than a sibling's work answers the question
    firmer = absence is not None and not ev.action and in_score > 0 and st.scores[absence["id"]] > s_score
    if not (s_score > 0 and not ev.action and s_score >= in_score - described and not guess and not firmer):
        return None
    _compare(st.trace, st.sibling["skill"], s_score, "in_scope", in_score - described)
    decision = Decision(
        "delegate",
        st.sibling,
        f"{st.sibling['skill']} (score {s_score:g}) asked for, no explicit distillation (in_scope "
        f"{in_score - described:g} without words that only describe the object)",
        trace=st.trace,
    )
    if s_score - in_score < float(rules["close_margin"]):
        decision.confidence, decision.question = "medium", _close_call(rules, st.sibling)
    return decision


def _close_call(rules: Mapping[str, Any], sibling: Mapping[str, Any]) -> str:
    """The question for a winner less than close_margin ahead: which of the two the user means."""
    return rules["questions"]["close_call"].format(covers=sibling["covers"].lower())


def _in_scope(st: _Standing, ev: Evidence, rules: Mapping[str, Any]) -> Decision:
    """Something asks for distillation: in scope, less sure when the words are unsure or a sibling is close behind."""
    questions = rules["questions"]
    close = float(rules["close_margin"])  # a winner less than this far ahead is a close call: say so and ask
    in_score, s_score = st.in_score, st.sibling_score
    how = (
        "an explicit distillation request"
        if ev.action
        else f"in_scope score {in_score:g} over the siblings' {s_score:g}"
    )
    _compare(st.trace, "in_scope", in_score, st.sibling["skill"], s_score, "ge" if ev.action else "gt")
    decision = Decision("in_scope", None, how, trace=st.trace)
    if ev.unsure_only("in_scope", "budget"):
        decision.confidence, decision.question = "low", questions["no_context"]
    elif s_score > 0 and in_score - s_score < close:
        decision.confidence, decision.question = "medium", _close_call(rules, st.sibling)
    elif not ev.action and in_score < close:
        decision.confidence, decision.question = "medium", questions["nothing_found"]
    return decision


def _nothing_asked(st: _Standing, ev: Evidence, rules: Mapping[str, Any]) -> Decision:
    """No distillation, sibling work or boundary asked for: not about an ML model, low confidence when it might be."""
    questions = rules["questions"]
    not_ml = next(b for b in rules["boundaries"] if b["id"] == "not_ml")
    decision = Decision(
        "out_of_scope", not_ml, "nothing asks for distillation, a sibling's work or a boundary", trace=st.trace
    )
    if ev.ml_context:
        decision.confidence, decision.question = "low", questions["nothing_found"]
    elif any(h.status == "no_ml_word" for h in ev.hits.get("in_scope", [])):
        decision.confidence, decision.question = "low", questions["no_context"]  # "student" alone: a person or a model?
    return decision


def _by_text(request: RouteRequest, rules: Mapping[str, Any], ev: Evidence, inputs: Mapping[str, Any]) -> Decision:
    """The text's evidence in the module's order: a named boundary, a sibling's work, a not-for boundary while no
    budget is stated, distillation, else not about an ML model."""
    st = _standing(request, rules, ev, inputs)
    decision = _named_boundary(st, ev)
    if decision is not None:
        return decision
    absence = _absence_boundary(request, rules, ev)
    decision = _sibling_work(st, ev, rules, absence)
    if decision is not None:
        return decision
    if absence and (st.in_score > 0 or not ev.budget):
        return Decision(
            "out_of_scope", absence, f"{absence['id']} is stated and no size or latency budget is", trace=st.trace
        )
    if st.in_score > 0:
        return _in_scope(st, ev, rules)
    return _nothing_asked(st, ev, rules)


def _dismissed(reading: Reading, ev: Evidence) -> bool:
    """The reader says in scope, but the rules saw every distillation word and set each aside (negated, or not meant
    in the ML sense): "rather than distillation, we want to prune", "how hot should the still be when distilling gin".
    The reader counts words; it cannot see what cancels them. (Measured leave-one-corpus-out over the held-out
    corpora: this stops five wrong overrides and two right ones.)"""
    hits = ev.hits.get("in_scope", []) if reading.label == "in_scope" else []
    return bool(hits) and not any(h.counts for h in hits)


def _second_opinion(rules: Mapping[str, Any], decision: Decision, ev: Evidence) -> Decision:
    """The learned reader replaces a text-only decision it disagrees with firmly, unless the rules read something it
    cannot (a number past a threshold, a negation); evidence.py asks it only when no structured input is given."""
    if ev.reader_unavailable:  # the rules still answer; the agent is told the second opinion is missing
        decision.warnings.append(
            AdviceWarning(
                id="learned_reader_unavailable",
                message=(
                    f"{ev.reader_unavailable}; the rules alone decided. Reinstall the package or retrain with "
                    "scripts/train_route_reader.py."
                ),
            )
        )
        return decision
    reading = ev.reading
    if reading is None:
        return decision
    settings = rules["learned_reader"]
    decision.reading = reading
    threshold = float(settings["override_probability"])
    if reading.label == "in_scope" and not ev.hits.get("in_scope"):
        threshold = float(
            settings["confident_probability"]
        )  # no distillation word at all: in scope only on a sure reading
    if (
        reading.label == decision.label
        or not reading.probability >= threshold
        or decision.firm
        or _dismissed(reading, ev)
    ):
        return decision
    verdict, entry = outcomes(rules)[reading.label]
    trace = decision.trace + [
        TraceEntry(
            rule="route.learned_reader",
            field=f"probability.{reading.label}",
            op="ge",
            value=round(reading.probability, 3),
            threshold=threshold,
            result="true",
        )
    ]
    how = (
        f"the learned reader reads it as {reading.label} (probability {reading.probability:.2f}), over the rules' "
        f"{decision.label} ({decision.decided_by})"
    )
    confident = reading.probability >= float(settings["confident_probability"])
    question = (
        None if confident else rules["questions"]["readings_differ"].format(learned=reading.label, rules=decision.label)
    )
    return Decision(
        verdict, entry, how, "high" if confident else "medium", question, trace, reading, warnings=decision.warnings
    )


def decide(request: RouteRequest, ev: Evidence, rules: Mapping[str, Any]) -> Decision:
    """The agent's structured inputs, else the text's evidence.

    Then the learned reader's second opinion, if it was asked.
    """
    inputs = _inputs(request, ev)
    decision = _by_goal(request, rules, ev, inputs)
    if decision is None:
        decision = _second_opinion(rules, _by_text(request, rules, ev, inputs), ev)
    decision.inputs = inputs
    return decision
