"""Evaluate the rule files' conditions against named inputs, recording every comparison.

Three-valued: a condition over a missing input is unknown (None), so a tree branch that
needs it is not taken and the answer can say which input would have changed it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from skill.models import AdviceWarning, MissingInput, TraceEntry

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
    "in": lambda value, allowed: value in allowed,
}
_UNARY: dict[str, Callable[[Any], bool]] = {
    "is_true": lambda value: value is True,
    "is_false": lambda value: value is False,
    "nonempty": lambda value: bool(str(value).strip()),
    "is_number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
}


def _plain(value: Any) -> Any:
    """Rule values are frozen tuples; report them as lists."""
    return list(value) if isinstance(value, tuple) else value


def evaluate(
    condition: Mapping[str, Any], inputs: Mapping[str, Any], rule: str, trace: list[TraceEntry]
) -> bool | None:
    """True, False, or None when an input it needs is missing; appends one trace entry per leaf."""
    if "all" in condition:
        results = [evaluate(c, inputs, rule, trace) for c in condition["all"]]
        if any(r is False for r in results):
            return False
        return True if all(r is True for r in results) else None
    if "any" in condition:
        results = [evaluate(c, inputs, rule, trace) for c in condition["any"]]
        if any(r is True for r in results):
            return True
        return False if all(r is False for r in results) else None
    field, op = condition["field"], condition["op"]
    value = inputs.get(field)
    threshold_name = condition.get("value_field")
    threshold = inputs.get(threshold_name) if threshold_name else condition.get("value")
    result: bool | None
    if value is None or (threshold_name and threshold is None):
        result = None
    elif op in _UNARY:
        result = _UNARY[op](value)
    else:
        result = bool(_COMPARE[op](value, threshold))
    trace.append(
        TraceEntry(
            rule=rule,
            field=field,
            op=op,
            value=_plain(value),
            threshold=threshold_name if threshold_name and threshold is None else _plain(threshold),
            result="unknown" if result is None else ("true" if result else "false"),
        )
    )
    return result


def condition_fields(condition: Mapping[str, Any]) -> list[str]:
    """Every input a condition reads (for 'missing input' reports)."""
    if "all" in condition or "any" in condition:
        return [f for c in condition.get("all", condition.get("any", ())) for f in condition_fields(c)]
    fields = [condition["field"]]
    if "value_field" in condition:
        fields.append(condition["value_field"])
    return fields


def walk_tree(
    tree: Any, inputs: Mapping[str, Any], rule: str, trace: list[TraceEntry]
) -> tuple[Mapping[str, Any], list[MissingInput]]:
    """First branch whose condition is true; earlier branches left unknown become missing inputs."""
    missing: list[MissingInput] = []
    for branch in tree:
        condition = branch.get("when")
        if condition is None:
            return branch, missing
        outcome = evaluate(condition, inputs, f"{rule}.{branch['id']}", trace)
        if outcome is True:
            return branch, missing
        if outcome is None:
            absent = [f for f in condition_fields(condition) if inputs.get(f) is None]
            missing.extend(MissingInput(field=f, effect=branch.get("missing_effect", "")) for f in absent)
    raise ValueError(f"rule tree {rule!r} has no default branch")


def fire_warnings(warnings: Any, inputs: Mapping[str, Any], rule: str, trace: list[TraceEntry]) -> list[AdviceWarning]:
    """Warnings from the rule files whose condition holds for these inputs."""
    fired = []
    for warning in warnings:
        if evaluate(warning["when"], inputs, f"{rule}.warning.{warning['id']}", trace) is True:
            fired.append(
                AdviceWarning(id=warning["id"], message=warning["message"], references=list(warning["references"]))
            )
    return fired
