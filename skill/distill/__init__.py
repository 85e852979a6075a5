"""The quick-distill runner: the only part of the package that imports torch (lazily, from its modules).

`run_quick_distill(config)` trains or loads a teacher, a from-scratch student and a distilled student
with paired seeds, and returns a `DistillReport`. For a server, `jobs.py` (torch-free) runs each one in a killable
worker process (`worker.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skill.distill.report import DistillReport


def run_quick_distill(config: Any, **kwargs: Any) -> DistillReport:
    """Import torch only when a distillation really runs."""
    from skill.distill.runner import run_quick_distill as _run

    return _run(config, **kwargs)
