"""One error type for bad input that passed the schema but not the meaning (shapes, limits, paths)."""

from __future__ import annotations

import json

from pydantic import ValidationError


class InputError(ValueError):
    """Bad user input; `field` names the input so every front end can point at it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: the field, what was given, what is accepted."""
    parts = []
    for err in exc.errors(include_url=False):
        if not err["loc"] and err["type"] == "value_error":
            # a check across fields: its message starts with the fields it compares; pydantic's "Value error, "
            # prefix and an echo of the whole request would only bury them
            parts.append(err["msg"].removeprefix("Value error, "))
            continue
        field = ".".join(str(p) for p in err["loc"]) or "(request)"
        given = err.get("input")
        shown = json.dumps(given, default=str)[:80] if not isinstance(given, dict) or err["type"] != "missing" else ""
        parts.append(f"{field}: {err['msg']}" + (f" (got {shown})" if shown and err["type"] != "missing" else ""))
    return "; ".join(parts)
