"""The `kd-skill distill` command: progress bar on stderr, report on stdout."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel


def _progress_bar(enabled: bool) -> Callable[[float, float, str], None]:
    def show(done: float, total: float, message: str) -> None:
        if not enabled:
            return
        width = 24
        filled = int(width * min(done / total, 1.0)) if total else 0
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {message[:90]:<90}")
        sys.stderr.flush()
        if total and done >= total:
            sys.stderr.write("\n")

    return show


def run_distill_command(args: argparse.Namespace, request_from_args: Callable[..., BaseModel]) -> Any:
    from skill.distill import run_quick_distill
    from skill.distill.config import DistillConfig

    config = request_from_args(DistillConfig, args)
    # the bar redraws one line, so it is drawn only on a terminal
    report = run_quick_distill(config, progress=_progress_bar(not args.no_progress and sys.stderr.isatty()))
    if not args.no_progress:
        sys.stderr.write(f"done in {report.wall_time_s.total:.1f} s: {report.summary}\n")
    return report
