"""No single request can freeze the server (issue 22): routing work is linear in the request, checked without a clock.

How work is bounded here, since tests never assert wall-clock time:
- every regular expression routing uses (each rule pattern, and the ones the code builds from rule data) is checked
  statically for the automaton shapes that make a backtracking matcher super-linear (tests/regex_ambiguity.py:
  exponential or polynomial ambiguity, and unbounded multi-word repeats a search restarts at every word);
- the same patterns then run on inputs built from their own pieces at the request size limit, in a child process
  whose timeout is only a hang guard (the old architecture-list pattern never finished);
- the Python loops over a request's words and numbers are measured in counted steps (line events under
  sys.settrace), at 1,000 and 4,000 characters: linear work grows 4x, quadratic 16x; the bound allows 6x.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from skill.models import RouteRequest
from skill.routing.numbers import number_patterns
from skill.routing.terms import Reader
from skill.routing.text import TOKEN
from skill.rules import get_rules
from tests.regex_ambiguity import ambiguity, fragments, unbounded_across_words

ROOT = Path(__file__).resolve().parents[1]
LIMIT = int(get_rules().boundaries["max_request_chars"])
NOT_PATTERNS = {"typo_vocabulary", "skills_folders"}


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def rule_patterns() -> list[tuple[str, str]]:
    """Every regular expression in boundaries.yaml (cue lists, term groups, breaks), with where it is."""
    rules = get_rules().boundaries
    found: list[tuple[str, str]] = []
    for key, value in rules["reading"].items():
        if key not in NOT_PATTERNS and isinstance(value, (str, list, tuple)):
            found += _strings(value, f"reading.{key}")
    owners = [("in_scope", rules["in_scope"]), ("budget", {"groups": [rules["budget"]]})]
    owners += [(f"boundaries.{b['id']}", b) for b in rules["boundaries"]] + [(f"siblings.{s['skill']}", s) for s in rules["siblings"]]
    for name, owner in owners:
        for group in owner.get("groups", []):
            found += _strings(group["patterns"], f"{name}.{group['id']}")
    return found


def code_patterns() -> list[tuple[str, str]]:
    """The expressions the code builds from rule data or holds itself."""
    rules = get_rules().boundaries
    reader = Reader("x", rules)
    reading = rules["reading"]
    return [(f"numbers.{k}", v) for k, v in number_patterns(rules).items()] + [
        ("route_reading.TOKEN", TOKEN.pattern), ("route_reading.object_gap", reader.object_gap.pattern),
        ("route_reading.breaks", f"{reading['sentence_breaks']}|{reading['phrase_breaks']}")]


ALL = rule_patterns() + code_patterns()


def test_the_rules_hold_patterns() -> None:
    assert len(rule_patterns()) > 1000  # the walk found the term groups, not an empty list


@pytest.mark.parametrize("pattern, expected", [
    (r"(?:a+)+b", "exponential"),
    (r"\w*\w*x", "polynomial"),
    (r"(?:x\w*)+", "exponential"),
    # the pattern that froze the server: "a " is read by the optional article or by the optional modifier word
    (r"(?:cnns?|lstms?)(?:,? (?:a |an )?(?:[\w-]+ )?(?:cnns?|grus?))*,? (?:or|vs\.?) (?:a |an )?(?:[\w-]+ )?cnns?", "exponential"),
    (r"cortex-m\d+\w*", "polynomial"),
    (r"(?:\w+ )*x", None),
    (r"distil\w*", None),
    (r"(?:a |an )?(?:[\w-]+ )?cnn", None),
])
def test_the_checker_tells_ambiguous_from_safe(pattern: str, expected: str | None) -> None:
    found = ambiguity(pattern)
    assert (found.split(":")[0] if found else None) == expected


def test_the_checker_finds_unbounded_lists() -> None:
    assert unbounded_across_words(r"cost(?:,? (?:and|or) (?:cost|size))+ (?:is not) a concern") != []
    assert unbounded_across_words(r"cost(?:,? (?:and|or) (?:cost|size)){1,8} x") == []
    assert unbounded_across_words(r"a\s+b[\w-]+") == []


@pytest.mark.parametrize("where, pattern", ALL, ids=[w for w, _ in ALL])
def test_every_pattern_matches_in_linear_time(where: str, pattern: str) -> None:
    """No two paths read the same text (so no exponential or polynomial backtracking), and no unbounded repeat
    runs across words (so a search does not restart a whole-text scan at every word). Python 3.10 has no atomic
    groups or possessive quantifiers, so patterns are written unambiguous instead."""
    assert ambiguity(pattern) is None, f"{where}: {ambiguity(pattern)}: {pattern}"
    assert unbounded_across_words(pattern) == [], f"{where}: bound these repeats: {unbounded_across_words(pattern)}"


_ADVERSARIAL = r'''
import json, re, sys, time
sys.path.insert(0, sys.argv[1])
from tests.regex_ambiguity import fragments
limit, patterns = int(sys.argv[2]), json.loads(sys.stdin.read())
worst, count = (0.0, ""), 0
for where, pattern in patterns:
    rx = re.compile(f"(?<!\\w)(?:{pattern})(?!\\w)", re.IGNORECASE)  # as compile_terms wraps it
    for piece in fragments(pattern):
        text = (piece * (limit // len(piece) + 1))[:limit - 1] + "\u00a7"
        t0 = time.perf_counter()
        for _ in rx.finditer(text):
            pass
        count += 1
        worst = max(worst, (time.perf_counter() - t0, f"{where}: {piece!r}"))
print(json.dumps({"inputs": count, "slowest_s": round(worst[0], 4), "slowest": worst[1]}))
'''


def test_patterns_on_their_own_pieces_at_the_size_limit() -> None:
    """Each pattern, wrapped as routing wraps it, over each of its alternatives and repeated parts (with and without
    the optional words) repeated up to the request size limit. The timeout is a hang guard only: before the fix the
    architecture-list pattern never finished on " a cnn" repeated."""
    proc = subprocess.run([sys.executable, "-c", _ADVERSARIAL, str(ROOT), str(LIMIT)], input=json.dumps(rule_patterns()),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    print(report)  # timings for the record; the bound on work is the static check above
    assert report["inputs"] > 5000


def _steps(text: str) -> int:
    """Line events while routing `text`: a count of Python work that does not depend on the machine's speed."""
    from skill.routing import route_request

    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        count += 1
        return local

    request = RouteRequest(request=text)
    sys.settrace(local)
    try:
        route_request(request)
    finally:
        sys.settrace(None)
    return count


def _repeat(piece: str, size: int) -> str:
    return (piece * (size // len(piece) + 1))[:size]


# each repeats what one loop of the reader iterates over: terms, negations, sentences, phrases, numbers and
# corrections, deferrals and joiners, context words, objects, subjects, uncertainty cues, model sizes
LOOP_ATTACKS = ["cnn a ", "1s wait ", "2 ms, wait, 20 ms ", "teacher student 3b ", "no distil model. ", "not distil ",
                "deploy it then quantize it later and ", "a. b, ", "rather than pruning i ", "distil it, that part is solved. ",
                "compress the images model ", "model mash ", "we don't know whether phone ", "distil 7b to 1b ",
                "compress, model; mash. ", "teacher whisky ", "cost, size and latency ", "a-"]


@pytest.mark.parametrize("piece", LOOP_ATTACKS)
def test_routing_work_grows_linearly_with_the_request(piece: str) -> None:
    small, large = _steps(_repeat(piece, LIMIT // 4)), _steps(_repeat(piece, LIMIT))
    print(piece, small, large, round(large / small, 2))
    assert large / small < 6, f"{piece!r}: {small} steps at {LIMIT // 4} characters, {large} at {LIMIT}"


_ROUTE = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
from skill.models import RouteRequest
from skill.routing import route_request
t0 = time.perf_counter()
print(route_request(RouteRequest(request=sys.stdin.read())).verdict, round(time.perf_counter() - t0, 2))
'''


@pytest.mark.parametrize("text", [_repeat("cnn a ", 240), _repeat("cnn a ", LIMIT), _repeat("1s ", 888 * 3) + "wait " * 267])
def test_the_reported_requests_answer(text: str) -> None:
    """The issue's requests (240 characters of "cnn a " froze the server; 888 numbers and 267 "wait" took 13 s)."""
    text = text[:LIMIT]
    proc = subprocess.run([sys.executable, "-c", _ROUTE, str(ROOT)], input=text, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    print(proc.stdout)
    assert proc.stdout.split()[0] in ("in_scope", "delegate", "out_of_scope")
