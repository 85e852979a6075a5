"""Benchmark (not a test): route every request of a labelled corpus and print accuracy and the confusion table.

A request is right when verdict and skill match its label, and, for out_of_scope, the boundary too.
Usage: python bench/route_corpus.py [corpus.yaml] [--misses] [--rules-only]
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skill.models import RouteRequest  # noqa: E402
from skill.routing import route_request  # noqa: E402
from skill.routing.learned import outcome_label  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "route_corpus.yaml"


def label(verdict: str, skill: str | None, boundary: str | None) -> str:
    """One class name per outcome (the package's own vocabulary, which the learned reader uses too)."""
    return outcome_label(verdict, skill, boundary)


@dataclass
class CorpusResult:
    total: int = 0
    right: int = 0
    confusion: Counter = field(default_factory=Counter)  # (expected, got) -> count
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (text, expected, got)

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0


def load_corpus(path: Path = CORPUS) -> list[Mapping[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def score_corpus(items: Iterable[Mapping[str, Any]], learned: bool = True) -> CorpusResult:
    """Route each item's text with no structured inputs (the text alone) and compare with its label;
    learned=False scores the rules without the learned reader."""
    result = CorpusResult()
    for item in items:
        answer = route_request(RouteRequest(request=item["text"]), learned=learned)
        expected = label(item["verdict"], item.get("skill"), item.get("boundary"))
        got = label(answer.verdict, answer.skill, answer.boundary)
        result.total += 1
        result.confusion[(expected, got)] += 1
        if expected == got:
            result.right += 1
        else:
            result.misses.append((item["text"], expected, got))
    return result


def confusion_table(result: CorpusResult) -> str:
    """Markdown table: one row per expected class, one column per answered class."""
    classes = sorted({c for pair in result.confusion for c in pair})
    short = [c.split(":")[-1][:12] for c in classes]
    lines = ["| expected \\ got | " + " | ".join(short) + " |", "|---" * (len(classes) + 1) + "|"]
    for expected in classes:
        cells = [str(result.confusion.get((expected, got), "")) for got in classes]
        lines.append(f"| {expected} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    paths = [a for a in argv if not a.startswith("--")]
    result = score_corpus(load_corpus(Path(paths[0]) if paths else CORPUS), learned="--rules-only" not in argv)
    print(f"accuracy {result.accuracy:.3f} ({result.right}/{result.total})\n")
    print(confusion_table(result))
    if "--misses" in argv:
        print()
        for text, expected, got in result.misses:
            print(f"- expected {expected}, got {got}: {text}")


if __name__ == "__main__":
    main(sys.argv[1:])
