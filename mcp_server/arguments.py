"""Strict argument checking: a tool's arguments become the library's request model, or one line naming the field.

The JSON Schemas in tools.json are advertised, not trusted: the library's own pydantic model validates each call
(unknown fields refused). On top of pydantic's lax mode: objects sent as JSON strings (some clients do) are decoded,
true/false is refused where a number is wanted, and nothing may nest deeper than `skill.strict_json.MAX_DEPTH`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel


class BadArguments(ValueError):
    """The one-line message a client gets back as an isError result."""


def describe(exc: Exception) -> BadArguments:
    """'Invalid arguments: <field>: <problem> (got <value>)', from a pydantic error or an InputError."""
    from pydantic import ValidationError

    from skill.errors import describe_validation_error

    text = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
    return BadArguments(f"Invalid arguments: {text}")


def parse_request(name: str, arguments: dict[str, Any]) -> BaseModel:
    """The tool's request model, validated; BadArguments otherwise."""
    from pydantic import ValidationError

    from mcp_server.specs import BY_NAME, request_model
    from skill.strict_json import MAX_DEPTH, bool_as_number, depth

    model = request_model(BY_NAME[name])
    decoded = dict(arguments)
    for key, value in arguments.items():
        field = model.model_fields.get(key)
        if field is not None and isinstance(value, str) and field.annotation is not str and value[:1] in "[{":
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                pass
            except RecursionError:
                raise BadArguments(
                    f"Invalid arguments: {key}: the JSON string nests too deeply; at most {MAX_DEPTH} levels"
                ) from None
    for key, value in decoded.items():
        if depth(value) > MAX_DEPTH:
            raise BadArguments(f"Invalid arguments: {key}: nests more than {MAX_DEPTH} levels deep")
    flagged = bool_as_number(model, decoded)
    if flagged:
        raise BadArguments(f"Invalid arguments: {flagged}: true/false is not a number; give a number")
    try:
        return model.model_validate(decoded)
    except ValidationError as exc:
        raise describe(exc) from exc
