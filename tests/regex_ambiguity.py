"""Static check that a regular expression cannot backtrack super-linearly: its position automaton is not ambiguous
in the exponential (EDA) or polynomial (IDA) sense.

Why static: Python's `re` backtracks, and a pattern in which two different paths can read the same text (an optional
word next to a word list that also matches it, `(?:a |an )?(?:[\\w-]+ )?cnn` inside a repeat) takes time exponential
(two loops on one word) or polynomial (two loops in sequence on one word) in the length of a failing input. The
number of paths is a property of the automaton, so it can be decided without running anything and without a clock
(Weber and Seidl 1991: an epsilon-free NFA is exponentially ambiguous iff some state has two distinct cycles on one
word; polynomially iff two distinct states p, q have p->p, p->q, q->q on one word). Tests use this as the bound on
work that a timing assert cannot give.

Model: the positions (character-reading nodes) of the parse tree, with bounded repeats expanded as nested optionals
(how `re` tries them) and lookarounds and anchors read as empty (so the check is conservative: it may flag a pattern
that a lookaround makes safe, never the reverse). Characters are abstracted to the literals the pattern names plus one
representative of each other kind (letter, digit, space, newline, punctuation, non-ASCII).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

try:  # Python 3.11+
    from re import _constants as C  # type: ignore[attr-defined]
    from re import _parser as P  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]

import re

MAX_POSITIONS = 6000  # a pattern bigger than this once repeats are expanded is refused: split it


class TooBig(ValueError):
    """The expanded automaton is larger than the check handles."""


@dataclass
class Nfa:
    """Thompson automaton: char edges (state -> (class mask, next)) and empty edges."""

    chars: dict[int, tuple[int, int]] = field(default_factory=dict)
    eps: dict[int, list[int]] = field(default_factory=dict)
    count: int = 0

    def new(self) -> int:
        self.count += 1
        if self.count > MAX_POSITIONS * 4:
            raise TooBig("pattern too large to analyse")
        return self.count - 1

    def empty(self, a: int, b: int) -> None:
        self.eps.setdefault(a, []).append(b)


def _alphabet(tree: Any, ignorecase: bool) -> list[str]:
    """Literal characters of the pattern plus representatives of every other kind of character."""
    chars: set[str] = set()

    def walk(items: Any) -> None:
        for op, av in items:
            if op in (C.LITERAL, C.NOT_LITERAL):
                chars.add(chr(av))
            elif op == C.IN:
                for iop, iav in av:
                    if iop in (C.LITERAL, C.NOT_LITERAL):
                        chars.add(chr(iav))
                    elif iop in (C.RANGE, getattr(C, "RANGE_UNI_IGNORE", C.RANGE)):
                        lo, hi = iav
                        chars.update({chr(lo), chr(hi), chr((lo + hi) // 2)})
            elif op == C.BRANCH:
                for branch in av[1]:
                    walk(branch)
            elif op == C.SUBPATTERN:
                walk(av[-1])
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)):
                walk(av[2])
            elif op in (C.ASSERT, C.ASSERT_NOT):
                walk(av[1])
            elif op == getattr(C, "ATOMIC_GROUP", None):
                walk(av)

    walk(tree)
    if ignorecase:
        chars = {c.lower() for c in chars}
    extra = [next(c for c in string.ascii_lowercase if c not in chars), next(c for c in string.digits if c not in chars),
             " ", "\n", "\t", "é", "_", "-", ".", ",", "'", "!", "§", "€"]
    return sorted(chars | set(extra))


def _member(ch: str, op: int, av: Any, ignorecase: bool) -> bool:
    forms = {ch, ch.lower(), ch.upper()} if ignorecase else {ch}
    if op == C.LITERAL:
        return chr(av) in forms
    if op == C.NOT_LITERAL:
        return chr(av) not in forms
    if op == C.ANY:
        return ch != "\n"
    if op in (C.RANGE, getattr(C, "RANGE_UNI_IGNORE", C.RANGE)):
        return any(av[0] <= ord(f) <= av[1] for f in forms)
    if op == C.CATEGORY:
        probe = {C.CATEGORY_DIGIT: r"\d", C.CATEGORY_NOT_DIGIT: r"\D", C.CATEGORY_SPACE: r"\s", C.CATEGORY_NOT_SPACE: r"\S",
                 C.CATEGORY_WORD: r"\w", C.CATEGORY_NOT_WORD: r"\W"}[av]
        return re.fullmatch(probe, ch) is not None
    if op == C.IN:
        negate = bool(av) and av[0][0] == C.NEGATE
        hit = any(_member(ch, iop, iav, ignorecase) for iop, iav in (av[1:] if negate else av))
        return hit != negate
    raise ValueError(f"unsupported character node {op}")


def _build(nfa: Nfa, items: Any, start: int, alphabet: list[str], ignorecase: bool) -> int:
    """Add `items` from state `start`; return the end state."""
    cur = start
    for op, av in items:
        if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
            mask = sum(1 << i for i, ch in enumerate(alphabet) if _member(ch, op, av, ignorecase))
            nxt = nfa.new()
            nfa.chars[cur] = (mask, nxt) if cur not in nfa.chars else nfa.chars[cur]
            if nfa.chars[cur] != (mask, nxt):  # a state reads at most one class: chain through an empty edge
                mid = nfa.new()
                nfa.empty(cur, mid)
                nfa.chars[mid] = (mask, nxt)
            cur = nxt
        elif op == C.BRANCH:
            end = nfa.new()
            for branch in av[1]:
                s = nfa.new()
                nfa.empty(cur, s)
                nfa.empty(_build(nfa, branch, s, alphabet, ignorecase), end)
            cur = end
        elif op == C.SUBPATTERN:
            cur = _build(nfa, av[-1], cur, alphabet, ignorecase)
        elif op == getattr(C, "ATOMIC_GROUP", None):
            cur = _build(nfa, av, cur, alphabet, ignorecase)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)):
            low, high, body = av
            for _ in range(low):
                cur = _build(nfa, body, cur, alphabet, ignorecase)
            if high == C.MAXREPEAT:
                loop, out = nfa.new(), nfa.new()
                nfa.empty(cur, loop)
                s = nfa.new()
                nfa.empty(loop, s)
                nfa.empty(loop, out)
                nfa.empty(_build(nfa, body, s, alphabet, ignorecase), loop)
                cur = out
            else:  # (body (body (...)?)?)?: nested, as re tries a bounded repeat, not a row of independent optionals
                out = nfa.new()
                for _ in range(high - low):
                    nfa.empty(cur, out)
                    cur = _build(nfa, body, cur, alphabet, ignorecase)
                nfa.empty(cur, out)
                cur = out
        elif op in (C.AT, C.ASSERT, C.ASSERT_NOT):
            continue  # zero-width: read as empty (conservative)
        else:
            raise ValueError(f"unsupported regex node {op} (backreferences and conditionals cannot be checked)")
    return cur


def _closure(nfa: Nfa, state: int, memo: dict[int, frozenset[int]]) -> frozenset[int]:
    """Character-reading states reachable from `state` by empty edges."""
    if state in memo:
        return memo[state]
    seen, stack, found = {state}, [state], set()
    while stack:
        s = stack.pop()
        if s in nfa.chars:
            found.add(s)
        for t in nfa.eps.get(s, ()):
            if t not in seen:
                seen.add(t)
                stack.append(t)
    memo[state] = frozenset(found)
    return memo[state]


@dataclass
class Positions:
    """The epsilon-free automaton: for each position, its class mask and the positions that may read next."""

    mask: dict[int, int]
    follow: dict[int, frozenset[int]]
    init: int = -1


def positions(pattern: str, flags: int = re.IGNORECASE) -> Positions:
    """Parse and build the position automaton of `pattern`."""
    tree = P.parse(pattern, flags)
    ignorecase = bool(flags & re.IGNORECASE)
    alphabet = _alphabet(tree, ignorecase)
    nfa = Nfa()
    start = nfa.new()
    _build(nfa, tree, start, alphabet, ignorecase)
    memo: dict[int, frozenset[int]] = {}
    mask = {s: m for s, (m, _) in nfa.chars.items()}
    follow = {s: _closure(nfa, nxt, memo) for s, (_, nxt) in nfa.chars.items()}
    follow[-1] = _closure(nfa, start, memo)
    if len(mask) > MAX_POSITIONS:
        raise TooBig(f"{len(mask)} positions")
    return Positions(mask, follow)


def _pair_graph(a: Positions) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Pairs of positions that read one common word, reachable from the start, with their edges."""
    start = (-1, -1)
    graph: dict[tuple[int, int], list[tuple[int, int]]] = {}
    stack = [start]
    while stack:
        p, q = stack.pop()
        if (p, q) in graph:
            continue
        edges = [(p2, q2) for p2 in a.follow[p] for q2 in a.follow[q] if a.mask[p2] & a.mask[q2]]
        graph[(p, q)] = edges
        stack.extend(e for e in edges if e not in graph)
    return graph


def _sccs(graph: dict[Any, list[Any]]) -> list[list[Any]]:
    """Tarjan's strongly connected components, iterative."""
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    on: set[Any] = set()
    stack: list[Any] = []
    out: list[list[Any]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    advanced = True
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(comp)
    return out


def ambiguity(pattern: str, flags: int = re.IGNORECASE) -> str | None:
    """None when matching `pattern` cannot backtrack super-linearly; otherwise what makes it ambiguous."""
    a = positions(pattern, flags)
    graph = _pair_graph(a)
    loops: set[int] = set()  # positions on a cycle
    for comp in _sccs(graph):
        cyclic = len(comp) > 1 or comp[0] in graph[comp[0]]
        if cyclic and any(p == q for p, q in comp) and any(p != q for p, q in comp):
            return "exponential: one position has two different loops reading the same text"
        if cyclic:
            loops.update(p for p, q in comp if p == q)
    # polynomial: p != q with loops on p and q and a path p -> q, all on one word; tracks (1,2) and (2,3) and (1,3)
    for p in loops:
        for q in loops:
            if p == q or (p, q) not in graph:
                continue
            if _triple_reaches(a, (p, p, q), (p, q, q)):
                return "polynomial: two loops in a row can read the same text"
    return None


def _triple_reaches(a: Positions, start: tuple[int, int, int], goal: tuple[int, int, int]) -> bool:
    """A non-empty path from `start` to `goal` in the three-track product (one word read by three paths)."""
    seen: set[tuple[int, int, int]] = set()
    stack = [start]
    while stack:
        x, y, z = stack.pop()
        for x2 in a.follow[x]:
            for y2 in a.follow[y]:
                m = a.mask[x2] & a.mask[y2]
                if not m:
                    continue
                for z2 in a.follow[z]:
                    if m & a.mask[z2]:
                        node = (x2, y2, z2)
                        if node == goal:
                            return True
                        if node not in seen:
                            seen.add(node)
                            stack.append(node)
    return False


def witnesses(pattern: str, flags: int = re.IGNORECASE, limit: int = 12) -> list[str]:
    """Texts the pattern's own pieces match: each alternative, each optional part left out and put in, each repeat
    once and twice. Repeated back to back they are the inputs most likely to make a matcher try many paths."""
    tree = P.parse(pattern, flags)
    alphabet = _alphabet(tree, bool(flags & re.IGNORECASE))

    def one(op: int, av: Any) -> str:
        return next((ch for ch in ("a", "e", "1", " ", "-", *alphabet) if _member(ch, op, av, bool(flags & re.IGNORECASE))), "")

    def gen(items: Any) -> list[str]:
        outs = [""]
        for op, av in items:
            if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
                parts = [one(op, av)]
            elif op == C.BRANCH:
                parts = [w for branch in av[1] for w in gen(branch)]
            elif op == C.SUBPATTERN:
                parts = gen(av[-1])
            elif op == getattr(C, "ATOMIC_GROUP", None):
                parts = gen(av)
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)):
                low, high, body = av
                inner = gen(body)
                counts = sorted({low, min(high, max(low, 1)), min(high, max(low, 2))})
                parts = [w * n for w in inner for n in counts]
            else:
                parts = [""]
            outs = list(dict.fromkeys(a + b for a in outs for b in parts[:limit]))[:limit * 4]
        return outs

    return [w for w in dict.fromkeys(gen(tree)) if w.strip()][:limit * 4]


def fragments(pattern: str, flags: int = re.IGNORECASE, per_node: int = 6) -> list[str]:
    """Witnesses of the whole pattern and of every alternative and repeated part inside it: the pieces an attacker
    repeats ("cnn a " for a list of architecture names with optional words between)."""
    tree = P.parse(pattern, flags)
    found: list[str] = list(witnesses(pattern, flags)[:per_node])

    def walk(items: Any) -> None:
        for op, av in items:
            subs: list[Any] = []
            if op == C.BRANCH:
                subs = list(av[1])
            elif op == C.SUBPATTERN:
                subs = [av[-1]]
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)):
                subs = [av[2]]
            for sub in subs:
                text = _unparse(sub)
                if text is not None:
                    found.extend(witnesses(text, flags)[:per_node])
                walk(sub)

    walk(tree)
    return [f for f in dict.fromkeys(found) if f.strip()]


def _unparse(items: Any) -> str | None:
    """Source text of a parsed sub-pattern, where the parser kept enough to rebuild it (None otherwise)."""
    try:
        return "".join(_node_text(op, av) for op, av in items)
    except ValueError:
        return None


def _char_text(op: int, av: Any) -> str:
    if op == C.LITERAL:
        return re.escape(chr(av))
    if op == C.NOT_LITERAL:
        return f"[^{re.escape(chr(av))}]"
    if op == C.ANY:
        return "."
    if op in (C.RANGE, getattr(C, "RANGE_UNI_IGNORE", C.RANGE)):
        return f"{re.escape(chr(av[0]))}-{re.escape(chr(av[1]))}"
    if op == C.CATEGORY:
        return {C.CATEGORY_DIGIT: r"\d", C.CATEGORY_NOT_DIGIT: r"\D", C.CATEGORY_SPACE: r"\s", C.CATEGORY_NOT_SPACE: r"\S",
                C.CATEGORY_WORD: r"\w", C.CATEGORY_NOT_WORD: r"\W"}[av]
    if op == C.NEGATE:
        return "^"
    raise ValueError(op)


def _node_text(op: int, av: Any) -> str:
    if op in (C.LITERAL, C.NOT_LITERAL, C.ANY):
        return _char_text(op, av)
    if op == C.IN:
        return "[" + "".join(_char_text(iop, iav) for iop, iav in av) + "]"
    if op == C.BRANCH:
        return "(?:" + "|".join(_unparse(b) or "" for b in av[1]) + ")"
    if op == C.SUBPATTERN:
        return "(?:" + (_unparse(av[-1]) or "") + ")"
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        low, high, body = av
        return "(?:" + (_unparse(body) or "") + ")" + ("{%d,}" % low if high == C.MAXREPEAT else "{%d,%d}" % (low, high))
    if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
        return ""
    raise ValueError(op)


def unbounded_across_words(pattern: str, flags: int = re.IGNORECASE) -> list[str]:
    """Unbounded repeats whose body can read a space: from each word where a search starts, such a repeat may run
    to the end of the text, so a search is quadratic over a long list even when unambiguous. Bound them ({1,8}):
    a search that starts at a later item still finds the match."""
    found: list[str] = []
    space = {C.LITERAL: lambda av: av == ord(" "), C.IN: lambda av: _member(" ", C.IN, av, False),
             C.ANY: lambda av: True, C.NOT_LITERAL: lambda av: av != ord(" ")}

    def reads_space(items: Any) -> bool:
        for op, av in items:
            if op in space and space[op](av):
                return True
            if op == C.BRANCH and any(reads_space(b) for b in av[1]):
                return True
            if op == C.SUBPATTERN and reads_space(av[-1]):
                return True
            if op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)) and reads_space(av[2]):
                return True
        return False

    def walk(items: Any) -> None:
        for op, av in items:
            if op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)):
                body = av[2]
                single = len(body) == 1 and body[0][0] in space  # \s+ or [ ]+ reads one run of blanks, not words
                if av[1] == C.MAXREPEAT and not single and reads_space(body):
                    found.append(_unparse(body) or "?")
                walk(body)
            elif op == C.BRANCH:
                for b in av[1]:
                    walk(b)
            elif op == C.SUBPATTERN:
                walk(av[-1])

    walk(P.parse(pattern, flags))
    return found
