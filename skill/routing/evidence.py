"""Read a request into evidence, once: each intent's term hits and score, the numbers, whether an explicit request
to distil is among them, and the learned reader's reading. Everything routing knows about the words is here; the
decision over it (decide.py) never looks at the text again.

The reading goes down, never back: text.py (normalise, mend typos, phrases) -> terms.py (term groups, negation,
sense) -> numbers.py (latencies, sizes, counts) -> learned.py (the second opinion, for a text-only request).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from skill.models import RouteRequest
from skill.routing.learned import LearnedReader, Reading, consult
from skill.routing.numbers import Quantity, drop_corrected, find_reduction, find_size_sweep, read_numbers
from skill.routing.terms import Hit, Reader, group_score
from skill.rules import RuleFileError

# the agent's structured inputs (every field of the request but its text): any one given and the learned reader is
# not asked, as it may never override them
STRUCTURED = tuple(name for name in RouteRequest.model_fields if name != "request")


@dataclass
class Evidence:
    """Everything read from the text: hits per intent, their scores, numbers, and what kind of context was seen."""

    hits: dict[str, list[Hit]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    numbers: list[Quantity] = field(default_factory=list)
    action: bool = False  # an explicit request to distil counted
    budget: bool = False  # a size or latency budget is stated
    ml_context: bool = False
    reading: Reading | None = None  # the learned reader's, for a text-only request
    reader_unavailable: str | None = None  # why the reader could not be asked (a missing or broken model)

    @property
    def model_params(self) -> float | None:
        """The model's size as the text states it: the largest parameter count."""
        params = [q.value for q in self.numbers if q.kind == "params"]
        return max(params) if params else None

    @property
    def latency_budget_ms(self) -> float | None:
        """The tightest latency the text states as a budget (not a measured, current one)."""
        budgets = [q.value for q in self.numbers if q.kind == "latency_ms" and not q.current]
        return min(budgets) if budgets else None

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


def read_evidence(request: RouteRequest, rules: Mapping[str, Any], learned: bool | LearnedReader = True) -> Evidence:
    """Score every intent's term groups and read the numbers; is_ml_model true (the agent says it is a
    machine-learning model) settles every word's sense. learned=False leaves the reader out, a LearnedReader is
    asked instead of the shipped one; it is asked only when no structured input is given."""
    reader = Reader(request.request, rules, ml_known=request.is_ml_model is True)
    ev = Evidence(ml_context=bool(reader.ml_words))
    _score(reader, ev, "in_scope", rules["in_scope"]["groups"], "goal")
    _score(reader, ev, "budget", [rules["budget"]], "budget")
    ev.numbers = [q for q in read_numbers(reader.text, rules) if not reader.negated_by(q.start)]  # "50 ms, not 5 ms"
    ev.numbers = drop_corrected(reader.text, rules, ev.numbers)
    for quantity in ev.numbers:
        if (quantity.kind == "latency_ms" and not quantity.current) or (quantity.kind == "size_mb" and quantity.target):
            group = {"id": "stated_budget", "weight": rules["budget"]["weight"], "context": "ml"}
            hit = reader.hit("budget", group, "budget", quantity.start, quantity.start + len(quantity.words))
            ev.hits["budget"].append(hit)
            ev.scores["budget"] = max(ev.scores["budget"], group_score([hit]))
    # a stated reduction is a goal; two model sizes ("a 3B student of the 70B") mostly describe the models, so they
    # do not outweigh a sibling's work the way a goal does
    for gid, found, weight, role in (
        ("size_reduction", find_reduction(reader.text, rules), "reduction_weight", "goal"),
        ("size_sweep", find_size_sweep(reader.text, rules, ev.numbers), "size_sweep_weight", "descriptor"),
    ):
        if found:
            group = {"id": gid, "weight": rules["numbers"][weight], "context": "ml"}
            hit = reader.hit("in_scope", group, role, found[0], found[0] + len(found[1]))
            ev.hits["in_scope"].append(hit)
            ev.scores["in_scope"] += group_score([hit])
    _drop_lone_descriptors(ev)
    ev.budget = ev.scores["budget"] > 0
    ev.scores["in_scope"] += ev.scores["budget"]
    for boundary in rules["boundaries"]:
        _score(reader, ev, boundary["id"], boundary.get("groups", []), "boundary")
    for sibling in rules["siblings"]:
        _score(reader, ev, sibling["skill"], sibling["groups"], "sibling")
        if sibling.get("shares_budget") and any(not h.deferred for h in ev.counted(sibling["skill"])):
            ev.scores[sibling["skill"]] += ev.scores[
                "budget"
            ]  # a target device supports deployment work as much as ours
    # an explicit "distil" is the ask unless it is put off or done, or a sibling's work stands in a weightier phrase
    # ("we'd distil it, but first we need SHAP")
    stressed = max(
        (reader.text.phrase(h.start).weight for s in rules["siblings"] for h in ev.counted(s["skill"])), default=0.0
    )
    ev.action = any(
        h.role == "action" and not h.deferred and (stressed <= 1 or reader.text.phrase(h.start).weight >= stressed)
        for h in ev.counted("in_scope")
    )
    if learned is not False and not any(getattr(request, name) is not None for name in STRUCTURED):
        try:
            ev.reading = consult(request.request, rules, learned if isinstance(learned, LearnedReader) else None)
        except RuleFileError as exc:  # the rules still answer; the agent is told the second opinion is missing
            ev.reader_unavailable = str(exc)
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
    stated = any(q.kind in ("latency_ms", "size_mb") for q in ev.numbers) or any(
        any(c.isdigit() for c in h.words) for h in counted
    )
    if len(roles) >= 2 or len(groups) >= 2 or stated:
        return
    note = "no word says machine learning, and nothing else supports it"
    ev.hits["in_scope"] = [
        replace(h, weight=0.0, status="no_ml_word", why=note) if h.counts else h for h in ev.hits["in_scope"]
    ]
    ev.scores["in_scope"] = 0.0
