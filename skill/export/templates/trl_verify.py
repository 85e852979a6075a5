"""The answer check for reasoning traces (rejection sampling): a hook, edit `verify` for your task.

Why: a chain of thought that reaches a wrong answer teaches the student to reason wrongly with confidence. The
teacher samples several traces per prompt and train.py keeps only those `verify` accepts (DeepSeek-R1's distilled
students were fine-tuned on traces filtered this way). The default compares the trace's final answer with the row's
"answer" field:
- the final answer is the last \\boxed{...} when there is one;
- a numeric reference ("0.5", "1/2", "\\frac{1}{2}", "1,024") is compared by value with the last number of the trace
  (or the boxed content), so 0.50, 1/2 and \\frac{1}{2} all match 0.5;
- any other reference is compared with the last non-empty line, which matches when it is the line or ends it at a word
  boundary ("The capital is Paris." matches "Paris"), case and final punctuation ignored.
Rows without an "answer" cannot be checked and are kept; train.py says how many were unchecked. For code, run the
tests here instead; for free-form answers, call a grader model here.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

BOXED = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
FRAC = re.compile(r"^(-?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")


def to_number(text: str) -> Fraction | None:
    """The value of a plain number, a fraction a/b, a LaTeX \\frac{a}{b}, or None when the text is not one number."""
    text = str(text).strip().strip("$").strip().rstrip(".").replace(" ", "")
    match = FRAC.match(text)
    if match:
        text = f"{match.group(1)}({match.group(2)})/({match.group(3)})".replace("(", "").replace(")", "")
    text = text.replace(",", "")
    try:
        if "/" in text:
            numerator, denominator = text.split("/", 1)
            return Fraction(numerator) / Fraction(denominator)
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


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
    return re.sub(r"\s+", " ", str(text)).strip().strip("$").rstrip(".!").strip().lower()


def verify(prompt: str, completion: str, row: dict[str, Any]) -> bool | None:
    """True: keep the trace; False: drop it; None: cannot tell (no reference answer), kept and counted as unchecked."""
    reference = row.get("answer")
    if reference is None:
        return None
    boxed = BOXED.findall(completion)
    expected = to_number(reference)
    if expected is not None:  # numbers by value: the boxed content, else the last number written
        candidate = boxed[-1] if boxed else (NUMBER.findall(completion) or [""])[-1]
        return to_number(candidate) == expected
    if boxed:
        return _norm(boxed[-1]) == _norm(reference)
    lines = [line for line in completion.strip().splitlines() if line.strip()]
    last, want = _norm(lines[-1] if lines else ""), _norm(reference)
    return bool(want) and (last == want or last.endswith(" " + want))
