"""The answer check for reasoning traces (rejection sampling): edit `verify` for your task.

Why: a chain of thought that reaches a wrong answer teaches the student to reason wrongly with confidence. The
teacher samples several traces per prompt and train.py keeps only those `verify` accepts (DeepSeek-R1's distilled
students were fine-tuned on traces filtered this way). The default below compares the trace's final answer with
the row's "answer" field (the last \\boxed{...}, else the last number, else the last line); rows without an
"answer" cannot be checked and are kept, and train.py says how many were unchecked. For code, run the tests here.
"""

from __future__ import annotations

import re
from typing import Any

BOXED = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*(?:/\d+)?")


def final_answer(text: str) -> str:
    """The trace's final answer: last \\boxed{...}, else the last number, else the last non-empty line."""
    boxed = BOXED.findall(text)
    if boxed:
        return boxed[-1].strip()
    numbers = NUMBER.findall(text)
    if numbers:
        return numbers[-1].replace(",", "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", str(text)).rstrip(".").lower()


def verify(prompt: str, completion: str, row: dict[str, Any]) -> bool | None:
    """True: keep the trace; False: drop it; None: cannot tell (no reference answer), kept and counted as unchecked."""
    reference = row.get("answer")
    if reference is None:
        return None
    return _norm(final_answer(completion)) == _norm(reference)
