"""Routing: does a request belong to this skill, to a sibling skill, or nowhere near distillation?

One public entry, `route_request`, and one direction through the package:

1. evidence.py reads the request into evidence, once: text.py normalises it and mends typos (typos.py), terms.py
   finds the term groups (negation, word sense), numbers.py the latencies, sizes and counts, learned.py gives the
   learned reader's reading of a text-only request;
2. decide.py decides over the structured inputs and that evidence (never the text);
3. answer.py builds the response.

The words it reads are data (skill/rules/lexicon/*.yaml); the decision rules and thresholds too
(skill/rules/boundaries.yaml).
"""

from __future__ import annotations

from skill.models import RouteRequest, RouteResponse
from skill.routing.answer import answer
from skill.routing.decide import decide
from skill.routing.evidence import read_evidence
from skill.routing.learned import LearnedReader
from skill.rules import get_rules

__all__ = ["route_request"]


def route_request(request: RouteRequest, learned: bool | LearnedReader = True) -> RouteResponse:
    """In scope, a sibling skill, or a not-for boundary, decided by what the request asks to be done.
    learned=False answers from the rules alone, a LearnedReader with that reader (to measure what the reader adds,
    or one trained without a corpus on that corpus)."""
    rules = get_rules().boundaries
    evidence = read_evidence(request, rules, learned)
    decision = decide(request, evidence, rules)
    return answer(request, decision, evidence, rules)
