"""Checks pydantic's lax mode skips.

`true` is not a number (it would pass as 1), and arguments cannot nest without end. `validate` applies them to a
tool call's arguments (the JSON Schemas a server advertises are not trusted: the library's model decides).
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel

from skill.errors import InputError

MAX_DEPTH = 32
Request = TypeVar("Request", bound=BaseModel)


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return tuple(m for a in typing.get_args(annotation) for m in _members(a))
    return (annotation,)


def bool_as_number(model: type[BaseModel], data: Any, prefix: str = "") -> str | None:
    """The dotted name of the first field given true/false where only numbers are accepted, else None."""
    if not isinstance(data, dict):
        return None
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is not None:
            found = _check(value, _members(field.annotation), f"{prefix}{key}")
            if found:
                return found
    return None


def _check(value: Any, kinds: tuple[Any, ...], name: str) -> str | None:
    if isinstance(value, bool):
        return name if bool not in kinds and any(k in (int, float) for k in kinds) else None
    for kind in kinds:
        origin = typing.get_origin(kind)
        if isinstance(value, list) and origin is list:
            inner = _members(typing.get_args(kind)[0])
            return next((f for i, v in enumerate(value) if (f := _check(v, inner, f"{name}.{i}"))), None)
        if isinstance(value, dict) and origin is dict:  # per-class maps: {"rare": true} is not an accuracy of 1.0
            inner = _members(typing.get_args(kind)[1])
            return next((f for k, v in value.items() if (f := _check(v, inner, f"{name}.{k}"))), None)
        if isinstance(value, dict) and isinstance(kind, type) and issubclass(kind, BaseModel):
            return bool_as_number(kind, value, f"{name}.")
    return None


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a JSON value, counted without recursion and stopping once past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def validate(model: type[Request], arguments: dict[str, Any]) -> Request:
    """`model` from a tool call's arguments: objects sent as JSON strings (some clients do) are decoded first, then
    nesting and true/false for a number are refused (InputError naming the field), then pydantic validates."""
    decoded = dict(arguments)
    for key, value in arguments.items():
        field = model.model_fields.get(key)
        if field is not None and isinstance(value, str) and field.annotation is not str and value[:1] in "[{":
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                pass
            except RecursionError:
                raise InputError(key, f"the JSON string nests too deeply; at most {MAX_DEPTH} levels") from None
    for key, value in decoded.items():
        if depth(value) > MAX_DEPTH:
            raise InputError(key, f"nests more than {MAX_DEPTH} levels deep")
    flagged = bool_as_number(model, decoded)
    if flagged:
        raise InputError(flagged, "true/false is not a number; give a number")
    return model.model_validate(decoded)
