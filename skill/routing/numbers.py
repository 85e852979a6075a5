"""Numbers a request states: latencies, sizes and parameter counts, each marked as a budget or a current value.

"under 4 ms", "3ms p99", "a 400-parameter model", "50 MB" feed the numeric boundaries the way the structured
inputs do; "the current model does 300ms" is a measurement, not a budget. Units and cues are rule data.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skill.routing.text import Text, compile_terms

NUMBER = r"(?<![\w.])(\d+(?:\.\d+)?)"


@dataclass(frozen=True)
class Quantity:
    kind: str  # latency_ms | size_mb | params
    value: float
    words: str
    start: int
    current: bool  # a measured, present value ("takes 12 ms", "we're at 20ms now")
    target: bool  # stated as a limit ("under 60 MB", "to 20MB", "8 MB budget")


def _units(mapping: Mapping[str, Any]) -> str:
    return "|".join(re.escape(u) for u in sorted(mapping, key=len, reverse=True))


def _cues_before(text: Text, start: int) -> str:
    """The words just before a number, within its phrase."""
    phrase = text.phrase(start)
    return text.raw[max(phrase.start, start - 40) : start]


def _is_current(text: Text, start: int, end: int, current: re.Pattern[str], target: re.Pattern[str]) -> bool:
    """A current-state cue ("takes", "we're at") at most 2 words before the number, or "now" right after it, and no
    target cue ("has to", "under") before it in its phrase."""
    before = _cues_before(text, start)
    if target.search(before):
        return False
    cues = list(current.finditer(before))
    return bool(cues and text.words_between(start - len(before) + cues[-1].end(), start) <= 2) or text.raw[
        end : end + 6
    ].strip().lower().startswith("now")


def _is_target(text: Text, start: int, end: int, before_cues: re.Pattern[str], after_cues: re.Pattern[str]) -> bool:
    """A limit cue before the number in its phrase ("under", "to", "needs a"), or right after it ("budget", "max")."""
    return bool(before_cues.search(_cues_before(text, start)) or after_cues.match(text.raw[end : end + 20].lstrip()))


_BUILT: dict[int, tuple[Any, dict[str, str]]] = {}


def number_patterns(rules: Mapping[str, Any]) -> dict[str, str]:
    """The regular expressions numbers are read with, built once per rule set from the rule data (tests check each of
    them for paths that could make matching super-linear, like the rule files' own patterns)."""
    numbers = rules["numbers"]
    cached = _BUILT.get(id(numbers))
    if cached is not None and cached[0] is numbers:
        return cached[1]
    _BUILT[id(numbers)] = (numbers, _build_patterns(numbers))
    return _BUILT[id(numbers)][1]


def _build_patterns(numbers: Mapping[str, Any]) -> dict[str, str]:
    """Latency, size, parameter count, size reduction and model-size patterns from the units and words in the rules."""
    count = rf"(?:{NUMBER}|(?<!\w)({_units(numbers['number_words'])}))"
    unit = rf"\d+(?:\.\d+)?\s?(?:{_units(numbers['size_units'])}|{_units(numbers['multipliers'])})(?!\w)"
    links = "|".join(re.escape(link) for link in numbers["reduction_links"])
    return {
        "latency": rf"{NUMBER}\s?({_units(numbers['latency_units'])})(?!\w)",
        "size": rf"{NUMBER}\s?({_units(numbers['size_units'])})(?!\w)",
        "params": rf"{count}\s?({_units(numbers['multipliers'])})?[\s-]?(?:{'|'.join(numbers['param_words'])})(?!\w)",
        "reduction": rf"(?<![\w.])({unit})(?:\s+[\w-]+){{0,3}}?\s+(?:{links})\s+"
        rf"(?:(?:a|an|the|about|around|under|below|roughly|~)\s+){{0,2}}({unit})",
        "size_sweep": rf"(?<![\w.$€£])(\d+(?:\.\d+)?)\s?({_units(numbers['model_size_units'])})(?!\w)",
    }


def read_numbers(text: Text, rules: Mapping[str, Any]) -> list[Quantity]:
    """Every latency, size and parameter count in the text, in order."""
    numbers = rules["numbers"]
    built = number_patterns(rules)
    current = compile_terms(tuple(rules["reading"]["current_cues"]))
    target = compile_terms(tuple(rules["reading"]["budget_cues"]))
    before_cues = compile_terms(tuple(rules["reading"]["budget_cues"]) + tuple(numbers["reduction_links"]))
    after_cues = compile_terms(tuple(rules["reading"]["budget_after_cues"]))
    found: list[Quantity] = []
    latency, size, params = (re.compile(built[name], re.IGNORECASE) for name in ("latency", "size", "params"))
    words = numbers["number_words"]
    for pattern, kind, table in (
        (latency, "latency_ms", numbers["latency_units"]),
        (size, "size_mb", numbers["size_units"]),
    ):
        for m in pattern.finditer(text.raw):
            value = float(m.group(1)) * float(table[m.group(2).lower()])
            is_current = _is_current(text, m.start(), m.end(), current, target)
            found.append(
                Quantity(
                    kind,
                    value,
                    m.group(0),
                    m.start(),
                    is_current,
                    _is_target(text, m.start(), m.end(), before_cues, after_cues),
                )
            )
    for m in params.finditer(text.raw):
        digits, word, scale = m.group(1), m.group(2), m.group(3)
        if scale is None and digits and "." in digits:
            continue  # "0.9 weight" is a loss weight, not a parameter count
        base = float(digits) if digits else float(words[word.lower()])
        value = base * (float(numbers["multipliers"][scale.lower()]) if scale else 1.0)
        found.append(Quantity("params", value, m.group(0), m.start(), False, False))
    return sorted(found, key=lambda q: q.start)


def _amount(words: str, rules: Mapping[str, Any]) -> float | None:
    """'3B' -> 3e9 (parameters), '20MB' -> 20e6 (bytes as MB x 1e6): comparable within one kind only."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s?([a-z]+)", words.strip().lower())
    if not m:
        return None
    unit = m.group(2)
    sizes, scales = rules["numbers"]["size_units"], rules["numbers"]["multipliers"]
    if unit in sizes:
        return float(m.group(1)) * float(sizes[unit]) * 1e6
    if unit in scales:
        return float(m.group(1)) * float(scales[unit])
    return None


def find_reduction(text: Text, rules: Mapping[str, Any]) -> tuple[int, str] | None:
    """Where the text states a smaller target for a model's size ("13B summarizer to 3B", "from 500MB to 20MB")."""
    pattern = re.compile(number_patterns(rules)["reduction"], re.IGNORECASE)
    for m in pattern.finditer(text.raw):
        before, after = _amount(m.group(1), rules), _amount(m.group(2), rules)
        if before and after and after < before:
            return m.start(), m.group(0)
    return None


def find_size_sweep(text: Text, rules: Mapping[str, Any], quantities: list[Quantity]) -> tuple[int, str] | None:
    """Where a second, different model size is stated: sizes of one model compared.

    For example "60M params -> 91.5%, 57M -> 84%".
    """
    scales = rules["numbers"]["model_size_units"]
    pattern = re.compile(number_patterns(rules)["size_sweep"], re.IGNORECASE)
    sizes: dict[float, tuple[int, str]] = {q.value: (q.start, q.words) for q in quantities if q.kind == "params"}
    for m in pattern.finditer(text.raw):
        sizes.setdefault(float(m.group(1)) * float(scales[m.group(2).lower()]), (m.start(), m.group(0)))
    if len(sizes) < 2:
        return None
    return sorted(sizes.values())[1]


def drop_corrected(text: Text, rules: Mapping[str, Any], quantities: list[Quantity]) -> list[Quantity]:
    """Drop a number that a correction cue restates with another of its kind ("2 ms... wait, 20 ms is fine").

    A number is corrected when a cue follows it and a number of its kind follows the cue, i.e. when the first cue
    after it comes before the last number of its kind: one binary search per number, not a cue x number x number
    scan (that took 13 s on 4,000 characters of "1s ... wait ...")."""
    cues = [m.start() for m in compile_terms(tuple(rules["reading"]["correction_cues"])).finditer(text.raw)]
    last: dict[str, int] = {}
    for q in quantities:
        last[q.kind] = max(last.get(q.kind, q.start), q.start)

    def corrected(q: Quantity) -> bool:
        i = bisect.bisect_right(cues, q.start)
        return i < len(cues) and cues[i] < last[q.kind]

    return [q for q in quantities if not corrected(q)]
