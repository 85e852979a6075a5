"""SKILL.md and the references/ topics, found in a checkout, an editable install or the wheel's share/ folder.

Front ends read documents through here, so a topic name is checked against the known list once: no path tricks.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_NAME = re.compile(r"^[a-z0-9-]+$")


def skill_root() -> Path:
    """Folder holding SKILL.md: $KD_SKILL_ROOT, the checkout above this package, or <prefix>/share/."""
    candidates = [
        os.environ.get("KD_SKILL_ROOT"),
        Path(__file__).resolve().parents[1],
        Path(sys.prefix) / "share" / "knowledge-distillation-deep",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "SKILL.md").is_file():
            return Path(candidate)
    raise FileNotFoundError("SKILL.md not found; set KD_SKILL_ROOT to the skill's folder")


def reference_topics() -> list[str]:
    return sorted(p.stem for p in (skill_root() / "references").glob("*.md"))


def read_skill() -> str:
    return (skill_root() / "SKILL.md").read_text(encoding="utf-8")


def read_reference(topic: str) -> str:
    """Text of references/<topic>.md; the topic is checked against the known list."""
    topics = reference_topics()
    if not _NAME.match(topic) or topic not in topics:
        raise KeyError(f"unknown reference topic {topic!r}; known: {', '.join(topics)}")
    return (skill_root() / "references" / f"{topic}.md").read_text(encoding="utf-8")
