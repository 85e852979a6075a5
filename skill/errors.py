"""One error type for bad input that passed the schema but not the meaning (shapes, limits, paths)."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input; `field` names the input so every front end can point at it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
