"""The request as text: compatibility forms folded, one-letter slips mended, then cut into sentences and phrases,
each phrase weighted (a contrast stresses it; a later, put-off or done step weighs less).

This is the first thing routing does with a request, and the only place the raw text is normalised: every later
reader (terms.py, numbers.py) reads `Text.raw`. The cue lists come from the lexicon (skill/rules/lexicon/clauses.yaml),
the weights from skill/rules/boundaries.yaml, `reading`.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from skill.routing.typos import mend_typos

TOKEN = re.compile(r"\w+(?:'\w+)?")
GAP_SPACE, GAP_WORD = 8, 60  # the most whitespace and the longest word read between a term and its object


@lru_cache(maxsize=4096)
def compile_terms(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One case-insensitive regex for a list of terms, each matched on word boundaries."""
    return re.compile("(?<!\\w)(?:" + "|".join(f"(?:{p})" for p in patterns) + ")(?!\\w)", flags=re.IGNORECASE)


def normalise(text: str) -> str:
    """Compatibility forms folded (full-width "ｄｉｓｔｉｌ" is "distil"), straight apostrophes and plain dashes, so
    "isn’t" and "isn't" read the same."""
    text = unicodedata.normalize("NFKC", text)
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-").replace("\u2014", " - ")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    weight: float = 1.0
    deferred: bool = False  # "we'll distil later", "after distillation": a step put off or done, not what is asked now


class Text:
    """The request with its word positions, sentences and weighted phrases."""

    def __init__(self, text: str, reading: Mapping[str, Any]):
        self.raw = mend_typos(normalise(text), reading["typo_vocabulary"], int(reading["typo_min_length"]))
        self.reading = reading
        self.tokens = [m.start() for m in TOKEN.finditer(self.raw)]
        self.sentences = self._split(reading["sentence_breaks"], [])
        contrast = compile_terms(tuple(reading["contrast_cues"]))
        step = compile_terms(tuple(reading["step_cues"]))
        starts = [m.start() for m in contrast.finditer(self.raw)] + [m.start() for m in step.finditer(self.raw)]
        breaks = f"{reading['sentence_breaks']}|{reading['phrase_breaks']}"
        starts += self._deferred_steps(self._split(breaks, starts))
        spans = self._split(breaks, starts)
        self.phrases = self._settle([self._weigh(s, contrast, step) for s in spans])
        self._phrase_starts = [p.start for p in self.phrases]
        self._sentence_starts = [p.start for p in self.sentences]

    def _split(self, breaks: str, extra_starts: Iterable[int]) -> list[Span]:
        cuts = {0, len(self.raw)} | {m.end() for m in re.finditer(breaks, self.raw)} | set(extra_starts)
        ordered = sorted(cuts)
        return [Span(a, b) for a, b in itertools.pairwise(ordered) if self.raw[a:b].strip()]

    def _deferred_steps(self, spans: Sequence[Span]) -> list[int]:
        """Where a put-off step joined by "and" starts.

        "..., train X from Y and export it afterwards" defers the export only.
        """
        deferral = compile_terms(tuple(self.reading["deferral_cues"]))
        joiner = compile_terms(tuple(self.reading["step_joiners"]))
        starts = []
        for span in spans:
            joins = [m.start() for m in joiner.finditer(self.raw, span.start, span.end)]
            for cue in deferral.finditer(self.raw, span.start, span.end):
                # the last joiner that ends before the cue (found once per span, then a binary search per cue)
                ends = [
                    j
                    for j in joins[
                        max(0, bisect.bisect_left(joins, cue.start()) - 8) : bisect.bisect_left(joins, cue.start())
                    ]
                    if joiner.match(self.raw, j, cue.start())
                ]
                if ends:
                    starts.append(ends[-1])
        return starts

    def _settle(self, phrases: list[Span]) -> list[Span]:
        """Every phrase of a sentence that calls its own work settled weighs like a done step.

        For example "..., that part is solved".
        """
        settled = compile_terms(tuple(self.reading["settled_cues"]))
        done = [s for s in self.sentences if settled.search(self.raw, s.start, s.end)]
        done_starts = [s.start for s in done]
        later = float(self.reading["later_step_weight"])

        def in_done(pos: int) -> bool:
            i = bisect.bisect_right(done_starts, pos) - 1
            return i >= 0 and done[i].start <= pos < done[i].end

        return [
            Span(p.start, p.end, p.weight * later, True) if in_done(p.start) and not p.deferred else p for p in phrases
        ]

    def _weigh(self, span: Span, contrast: re.Pattern[str], step: re.Pattern[str]) -> Span:
        piece = self.raw[span.start : span.end].lstrip()
        weight = 1.0
        if contrast.match(piece):
            weight *= float(self.reading["contrast_weight"])
        later = bool(compile_terms(tuple(self.reading["deferral_cues"])).search(piece))
        done = bool(
            compile_terms(tuple(self.reading["done_cues"])).search(piece)
        )  # "after distillation", "we're done distilling"
        done = done or bool(
            compile_terms(tuple(self.reading["other_party_cues"])).search(piece)
        )  # "an attacker distils a copy"
        if step.match(piece) or later or done:
            weight *= float(self.reading["later_step_weight"])
        return Span(span.start, span.end, weight, later or done)

    def words_between(self, a: int, b: int) -> int:
        """Words starting in [a, b)."""
        lo, hi = sorted((a, b))
        return bisect.bisect_left(self.tokens, hi) - bisect.bisect_left(self.tokens, lo)

    @staticmethod
    def _containing(spans: Sequence[Span], starts: Sequence[int], pos: int) -> Span:
        """The span holding `pos` (spans are sorted and do not overlap): a binary search, as every term asks."""
        i = bisect.bisect_right(starts, pos) - 1
        if 0 <= i < len(spans) and spans[i].start <= pos < spans[i].end:
            return spans[i]
        return spans[-1] if spans else Span(0, 0)

    def phrase(self, pos: int) -> Span:
        return self._containing(self.phrases, self._phrase_starts, pos)

    def sentence(self, pos: int) -> Span:
        return self._containing(self.sentences, self._sentence_starts, pos)
