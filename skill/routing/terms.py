"""Find the term groups a request states: where, whether negated, and in which sense.

Routing decides by what is asked to be done, so a word counts only as a term of a group (an action, a goal or a
descriptor of the object), only when no negation cue in its phrase cancels it, and, for ambiguous words
(compress, teacher, temperature, distil), only when the nearest context word is a machine-learning one.
The words come from the lexicon (skill/rules/lexicon/*.yaml), the windows from skill/rules/boundaries.yaml.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skill.routing.text import Text, compile_terms

GAP_SPACE, GAP_WORD = 8, 60  # the most whitespace and the longest word read between a term and its object


@dataclass(frozen=True)
class Hit:
    """One term the request states, and whether it counts."""

    owner: str  # "in_scope", "budget", a boundary id or a sibling skill
    group: str
    role: str  # action | goal | descriptor | boundary | sibling | budget
    words: str
    start: int
    weight: float  # the group's weight times the phrase's weight; 0 when it does not count
    status: str  # counted | negated | not_ml | unsure (counted, but no context word says ML or not)
    why: str = ""
    deferred: bool = False

    @property
    def counts(self) -> bool:
        return self.status in ("counted", "unsure")

    def describe(self) -> str:
        note = f"; {self.why}" if self.why else ""
        return f"'{self.words}' ({self.group}, {self.status}, weight {self.weight:g}{note})"


class Reader:
    """Finds term groups in a request and decides, term by term, whether each counts."""

    def __init__(self, text: str, rules: Mapping[str, Any], ml_known: bool = False):
        self.rules = rules
        self.ml_known = ml_known
        self.reading = rules["reading"]
        self.text = Text(text, self.reading)
        bounds = {
            start for start, _, _ in self._spans(self.reading["bound_phrases"])
        }  # "no more than 5 ms" states a limit
        self.negations = [n for n in self._spans(self.reading["negation_cues"]) if n[0] not in bounds]
        objects_only = compile_terms(tuple(self.reading["object_negation_cues"]))
        self.object_negations = {start for start, end, words in self.negations if objects_only.fullmatch(words)}
        self.subjects = [start for start, _, _ in self._spans(self.reading["clause_subjects"])]
        self.uncertain = self._spans(self.reading["uncertainty_cues"])
        self.dismissals = self._spans(self.reading["dismissal_cues"])
        # sorted positions for binary searches: every term asks about the cues near it, never about all of them
        self._negation_ends = [end for _, end, _ in self.negations]
        self._dismissal_starts = [start for start, _, _ in self.dismissals]
        self._uncertain_starts = [start for start, _, _ in self.uncertain]
        # "image classifier", "summarization model": a word that only qualifies an ML noun is not a vote against ML
        nouns = self._spans(self.reading["ml_nouns"])
        ml_starts = {start for start, _, _ in nouns}
        non_ml = [w for w in self._spans(self.reading["non_ml_context"]) if not self._qualifies(w[1], ml_starts)]

        non_ml.sort()
        non_ml_starts = [n[0] for n in non_ml]
        longest = max((n[1] - n[0] for n in non_ml), default=0)

        def inside_non_ml(w: tuple[int, int, str]) -> bool:
            around = non_ml[
                bisect.bisect_left(non_ml_starts, w[0] - longest) : bisect.bisect_right(non_ml_starts, w[0])
            ]
            return any(n[0] <= w[0] and w[1] <= n[1] and n[1] - n[0] > w[1] - w[0] for n in around)

        def outside(found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
            """ "car model", "teacher training": an ML word inside a longer non-ML phrase is part of that phrase."""
            return [w for w in found if not inside_non_ml(w)]

        names, terms, nouns = (
            outside(self._spans(self.reading["model_names"])),
            outside(self._spans(ml_terms(rules))),
            outside(nouns),
        )
        names += self._together()
        # the siblings' terms, our unambiguous ones (TensorRT, SHAP, logits) and model names also say "machine learning"
        self.ml_words = sorted(outside(self._spans(self.reading["ml_context"])) + terms + names)
        # "distillation recipe", "image segmenter": everyday words vote only while nothing names a model
        self.names_model = bool(names or nouns or terms)
        weak = [w for w in self._spans(self.reading["weak_non_ml_context"]) if not self._qualifies(w[1], ml_starts)]
        # ...and, when one is named, as the object right after an ambiguous term ("compress the images", see sense())
        self.weak_objects = weak
        # whitespace and the word between are bounded so that only the objects a few characters on are looked at
        self.object_gap = re.compile(
            rf"\s{{1,{GAP_SPACE}}}(?:{'|'.join(self.reading['object_determiners'])})\s{{1,{GAP_SPACE}}}(?:[\w-]{{1,{GAP_WORD}}}\s{{1,{GAP_SPACE}}})?",
            re.IGNORECASE,
        )
        self.object_reach = 3 * GAP_SPACE + GAP_WORD + max(len(d) for d in self.reading["object_determiners"])
        self.non_ml_words = sorted(non_ml if self.names_model else non_ml + weak)
        self.weak_words = {w[0] for w in weak}
        # sorted starts, so that sense() looks only at the words near a term (one binary search, not a scan of all)
        self.weak_objects = sorted(weak)
        self._weak_starts = [w[0] for w in self.weak_objects]
        self._near = {
            kind: (found, [w[0] for w in found], max((w[1] - w[0] for w in found), default=0))
            for kind, found in (("ml", self.ml_words), ("not_ml", self.non_ml_words))
        }

    def _together(self) -> list[tuple[int, int, str]]:
        """The words of every ml_together set whose terms all occur: together they name models."""
        found = [[self._spans([term]) for term in group] for group in self.reading["ml_together"]]
        return [w for spans in found if all(spans) for hits in spans for w in hits]

    def _qualifies(self, end: int, ml_starts: set[int]) -> bool:
        gap = len(self.text.raw[end:]) - len(self.text.raw[end:].lstrip(" -"))
        return 0 < gap <= 2 and end + gap in ml_starts

    def _spans(self, patterns: Iterable[str]) -> list[tuple[int, int, str]]:
        return [(m.start(), m.end(), m.group(0)) for m in compile_terms(tuple(patterns)).finditer(self.text.raw)]

    def negated_by(self, start: int, end: int | None = None) -> str | None:
        """The cue that cancels a term: a negation at most negation_window words before it in its phrase, or a
        dismissal right after it ("federated learning is out of scope")."""
        phrase = self.text.phrase(start)
        window = int(self.reading["negation_window"])
        # nearest cue first; cues are sorted and do not overlap, so the scan stops at the first one out of reach
        for i in range(bisect.bisect_right(self._negation_ends, start) - 1, -1, -1):
            cue_start, cue_end, words = self.negations[i]
            if cue_start < phrase.start or self.text.words_between(cue_end, start) > window:
                break
            if cue_start in self.object_negations and self._subject_between(cue_end, start):
                continue  # "rather than pruning I'd prefer distillation": the cue took its object, not the next clause
            return words
        if end is not None:
            for i in range(bisect.bisect_left(self._dismissal_starts, end), len(self.dismissals)):
                cue_start, _, words = self.dismissals[i]
                if cue_start >= phrase.end or self.text.words_between(end, cue_start) > window:
                    break
                return words
        return None

    def _subject_between(self, a: int, b: int) -> bool:
        """A clause subject starts in [a, b)."""
        i = bisect.bisect_left(self.subjects, a)
        return i < len(self.subjects) and self.subjects[i] < b

    def sense(self, start: int, end: int) -> tuple[str, str]:
        """'ml', 'not_ml' or 'unsure' for an ambiguous term: the context words within context_window words in its
        sentence vote (a tie goes to the nearest); with none near, any context word in the request decides."""
        if self.ml_known:
            return "ml", "the caller says it is a machine-learning model"
        sentence = self.text.sentence(start)
        window = int(self.reading["context_window"])
        near: list[tuple[int, str, str, int]] = []
        objects = []
        if self.names_model:
            starts = self._weak_starts
            nearby = self.weak_objects[
                bisect.bisect_left(starts, end) : bisect.bisect_right(starts, end + self.object_reach)
            ]
            objects = [w for w in nearby if self.object_gap.fullmatch(self.text.raw[end : w[0]])]
        lo, hi = self._window(start, end, window)
        for kind in ("ml", "not_ml"):
            found, starts, longest = self._near[kind]
            candidates = found[bisect.bisect_left(starts, lo - longest) : bisect.bisect_right(starts, hi)]
            for w_start, w_end, words in candidates + (objects if kind == "not_ml" else []):
                if (w_end > start and w_start < end) or not (sentence.start <= w_start < sentence.end):
                    continue  # the term itself, or another sentence
                distance = (
                    self.text.words_between(w_end, start) if w_end <= start else self.text.words_between(end, w_start)
                )
                if distance <= window:
                    near.append((distance, kind, words, w_start))
        if (
            near
            and self.ml_words
            and all(kind == "not_ml" and start_ in self.weak_words for _, kind, _, start_ in near)
        ):
            # only everyday words nearby ("the student reports 99%"), while the request speaks of ECE elsewhere
            return "ml", f"the request mentions '{self.ml_words[0][2]}'; only everyday words are near"
        if near:
            votes = {kind: sum(1 for n in near if n[1] == kind) for kind in ("ml", "not_ml")}
            nearest = min(near)
            kind = nearest[1] if votes["ml"] == votes["not_ml"] else max(votes, key=lambda k: votes[k])
            said = ", ".join(f"'{w}'" for _, k, w, _ in sorted(near) if k == kind)
            return kind, f"near {said}"
        if self.ml_words:
            return "ml", f"the request mentions '{self.ml_words[0][2]}'"
        if self.non_ml_words:
            return "not_ml", f"the request mentions '{self.non_ml_words[0][2]}'"
        return "unsure", "no word says whether this is about a machine-learning model"

    def _window(self, start: int, end: int, window: int) -> tuple[int, int]:
        """Character bounds of the words at most `window` words before `start` or after `end` (a superset: the exact
        word distance is checked by the caller)."""
        tokens = self.text.tokens
        before = bisect.bisect_left(tokens, start) - window - 1
        after = bisect.bisect_left(tokens, end) + window
        lo = tokens[before] if before >= 0 else 0
        hi = tokens[after] if after < len(tokens) else len(self.text.raw)
        return lo, hi

    def hit(self, owner: str, group: Mapping[str, Any], role: str, start: int, end: int) -> Hit:
        """One term, judged: negated, outside machine learning, or counted at its phrase's weight."""
        words = self.text.raw[start:end]
        base = float(group["weight"])
        negation = self.negated_by(start, end)
        if negation:
            return Hit(owner, group["id"], role, words, start, 0.0, "negated", f"after '{negation}'")
        phrase = self.text.phrase(start)
        doubt = None
        if role == "budget":
            i = bisect.bisect_left(self._uncertain_starts, phrase.start)
            doubt = self.uncertain[i][2] if i < len(self.uncertain) and self.uncertain[i][0] < phrase.end else None
        if doubt:
            return Hit(owner, group["id"], role, words, start, 0.0, "negated", f"the target is open: '{doubt}'")
        status, why = "counted", ""
        if group.get("context") == "ml":
            sense, why = self.sense(start, end)
            status = {"ml": "counted", "not_ml": "not_ml", "unsure": "unsure"}[sense]
        weight = base * phrase.weight if status != "not_ml" else 0.0
        return Hit(owner, group["id"], role, words, start, weight, status, why, phrase.deferred)

    def find(self, owner: str, group: Mapping[str, Any], role: str) -> list[Hit]:
        pattern = compile_terms(tuple(group["patterns"]))
        return [self.hit(owner, group, role, m.start(), m.end()) for m in pattern.finditer(self.text.raw)]


def ml_terms(rules: Mapping[str, Any]) -> tuple[str, ...]:
    """Patterns of the groups marked says_ml: words that only occur in machine learning (logits, TensorRT, SHAP)."""
    groups = list(rules["in_scope"]["groups"]) + [g for s in rules["siblings"] for g in s["groups"]]
    groups = [g for g in groups if g.get("says_ml")]
    return tuple(p for g in groups for p in g["patterns"])


def group_score(hits: Sequence[Hit]) -> float:
    """A group scores once: the weight of its strongest counted term (repeating a word does not add up)."""
    return max((h.weight for h in hits if h.counts), default=0.0)
