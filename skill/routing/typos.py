"""Mend one-letter slips in the words routing depends on ("temprature", "distll", "knowlege") before reading.

People type fast to their agent; a lexicon that only knows the right spelling misses the word that decides the
route. A word is mended only when it is one edit (a letter added, dropped, changed, or two swapped) from a word
of `typo_vocabulary` (skill/rules/lexicon/typos.yaml), is long enough that such a near miss is rarely another real
word, and the edit is not at its end (so "distil"/"distill", "architectures", "quantizes" stay as written).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

WORD = re.compile(r"[A-Za-z]+")


def _one_edit_inside(word: str, target: str) -> bool:
    """True when word becomes target by one edit that leaves the last letter alone."""
    if word == target or abs(len(word) - len(target)) > 1 or word[-1] != target[-1]:
        return False
    if len(word) == len(target):
        diff = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        swapped = (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and word[diff[0]] == target[diff[1]]
            and word[diff[1]] == target[diff[0]]
        )
        return len(diff) == 1 or swapped
    short, long = (word, target) if len(word) < len(target) else (target, word)
    if long[:-1] == short or long[:-2] + long[-1] == short:
        return False  # a letter added or dropped at the end ("distil"/"distill"): a spelling, not a slip
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long) - 1))


@lru_cache(maxsize=8)
def _vocabulary(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(w.lower() for w in words)


def mend_typos(text: str, vocabulary: Iterable[str], min_length: int) -> str:
    """The text with each near miss of a vocabulary word replaced by that word (case of the first letter kept)."""
    known = _vocabulary(tuple(vocabulary))
    if not known:
        return text

    def mend(match: re.Match[str]) -> str:
        word = match.group(0)
        lower = word.lower()
        if len(lower) < min_length or lower in known:
            return word
        for target in sorted(known):
            if _one_edit_inside(lower, target):
                return target.capitalize() if word[0].isupper() else target
        return word

    return WORD.sub(mend, text)
