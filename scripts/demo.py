"""The main job: start the MCP server over stdio, drive a realistic session with the real SDK client, and end with
two quick distills through the server - one where distillation clearly helps (a strong teacher, few labels, unlabelled
rows) and one where it does not (digits) - what an agent sees for "shrink my 800 MB BERT to fit a phone"."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from skill.formatting import to_text  # noqa: E402

SESSION = [
    ("kd_route_request", {"request": "Shrink my 800 MB BERT sentiment model to fit a phone (50 MB, 200 ms budget)"}),
    ("kd_choose_alpha", {"deployment_environment": "mobile", "application_domain": "general"}),
    ("kd_recommend_method", {"task_type": "classification", "task_similarity": 0.95, "teacher_params": 800, "student_params": 50,
                             "environment_stability": "static", "task_distribution_known": True}),
    ("kd_score_distillation", {"alpha": 0.7, "teacher_size": 800, "teacher_accuracy": 0.95, "student_size": 50, "student_accuracy": 0.912}),
    ("kd_diagnose_failure", {"overall_accuracy": 0.912, "per_class_accuracy": {"positive": 0.95, "negative": 0.93, "mixed": 0.58},
                             "class_support": {"positive": 4800, "negative": 4700, "mixed": 500},
                             "student_error_confidence": 0.93, "teacher_error_confidence": 0.71, "training_temperature": 1}),
    # the same student as the diagnosis above (trained at T = 1, the rare class collapsed), so the gates agree with it
    ("kd_check_quality_gates", {"alpha": 0.7, "alpha_reason": "phone app: size first", "distillation_score": 0.0557, "compression_ratio": 16,
                                "temperature": 1, "stratified_validation": True, "per_class_thresholds_met": False, "latency_ms": 180, "latency_budget_ms": 200, "memory_mb": 50, "memory_budget_mb": 50,
                                "accuracy": 0.912, "accuracy_target": 0.9}),
]


# Two quick distills, 3 paired seeds each, through the server: one where distillation clearly helps (a strong teacher
# trained elsewhere on 20,000 labelled signals, 300 labels here and 4,000 unlabelled rows: scripts/signal_task.py) and
# one where it does not (digits: its teacher is no better than a small student trained alone). Each budget is a plan,
# not a deadline: the runner cuts trials, then epochs, to fit it, and says so; on an idle 2-core machine the whole
# demo takes about 90 s.
SIGNAL_DATA = "kd_runs/demo-data/signal.npz"
CASES = [
    ("signal", "a 1-D signal task: 300 labels, 4,000 unlabelled rows, a strong teacher given as weights",
     {"dataset": SIGNAL_DATA, "teacher": "scripts/demo_data/signal_teacher.safetensors", "input_layout": "sequence", "student_hidden": [8, 8],
      "seeds": 3, "time_budget_s": 45, "output_dir": "kd_runs/demo-signal"}),
    ("digits", "bundled digits: all labels, a teacher trained here",
     {"seeds": 3, "time_budget_s": 45, "output_dir": "kd_runs/demo-digits"}),
]
DISTILL = CASES[1][2]  # the digits case (kept under its old name for callers)


def plain_words(name: str, report: dict) -> str:
    """One sentence a newcomer can read: does distillation help on this case, with the number and its interval."""
    c = report.get("comparison") or {}
    verdict = c.get("verdict")
    teacher = report["teacher"]["accuracy"]
    scratch = c.get("scratch_mean_accuracy") or (report.get("scratch") or {}).get("accuracy", 0.0)  # the mean over seeds
    if not c:
        return f"{name}: no comparison (the run stopped early): {report.get('verdict', '')}"
    interval = f"{c['mean_gain_points']:+.1f} points, 95% interval {c['interval'][0]:+.1f} to {c['interval'][1]:+.1f}, {len(c['pairs'])} paired seeds"
    if verdict == "gain":
        return f"{name}: distillation HELPS here: the distilled student beats the one trained alone by {interval} (verdict: gain)"
    if c.get("inconclusive_reason") == "unequal_training":
        return f"{name}: no answer yet: the time budget cut the distilled students short ({interval}; verdict: inconclusive)"
    if verdict == "inconclusive":
        return (f"{name}: distillation has nothing to give here: the teacher ({teacher:.3f}) is no better than a student trained alone "
                f"({scratch:.3f}), so no student can learn more from it ({interval}; verdict: inconclusive)")
    if verdict == "loss":
        return f"{name}: distillation HURT here ({interval}; verdict: loss)"
    return f"{name}: distillation made no demonstrated difference here ({interval}; verdict: {verdict})"


class ProgressLine:
    """Progress a person can read: on a terminal one line redrawn in place (a bar and the latest message);
    elsewhere (a pipe, a CI log) one line every `every_s` seconds and the last one, never a line per epoch."""

    def __init__(self, stream: TextIO = sys.stderr, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic, width: int = 24):
        self.stream, self.every_s, self.clock, self.width = stream, every_s, clock, width
        self.tty = stream.isatty()
        self.last = -math.inf
        self.drawn = False

    def __call__(self, done: float, total: float | None, message: str | None) -> None:
        text = message or ""
        if self.tty:
            filled = int(self.width * min(done / total, 1.0)) if total else 0
            self.stream.write(f"\r  [{'#' * filled}{'.' * (self.width - filled)}] {text[:80]:<80}")
            self.drawn = True
        else:
            now = self.clock()
            finished = bool(total) and done >= total  # type: ignore[operator]
            if now - self.last < self.every_s and not finished:
                return
            self.last = now
            self.stream.write(f"  {done:.0f}/{total:.0f} {text}\n" if total else f"  {text}\n")  # no total yet: no '0/0'
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line so the next output starts on its own line."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


async def advise() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server"], cwd=str(ROOT),
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    async with Client(params) as client:
        tools = await client.list_tools()
        print(f"connected to knowledge-distillation: {len(tools.tools)} tools: {', '.join(t.name for t in tools.tools)}")
        for name, arguments in SESSION:
            print(f"\n>>> {name} {json.dumps(arguments)}")
            result = await client.call_tool(name, arguments)
            data = result.structured_content or {}
            print(to_text(data) if data else result.content[0].text)

        sys.path.insert(0, str(ROOT / "scripts"))
        from signal_task import write_data

        write_data(ROOT / Path(SIGNAL_DATA).parent)  # generated again from its seed: only the teacher's weights ship
        words = []
        for name, what, arguments in CASES:
            print(f"\n>>> kd_run_quick_distill ({what}; teacher vs from-scratch vs distilled students, 3 paired seeds)")
            line = ProgressLine()

            async def show(done: float, total: float | None, message: str | None) -> None:
                line(done, total, message)

            t0 = time.monotonic()
            result = await client.call_tool("kd_run_quick_distill", arguments, progress_callback=show)
            line.close()
            print(to_text(result.structured_content) if not result.is_error else result.content[0].text)
            if not result.is_error and result.structured_content:
                words.append(plain_words(name, result.structured_content) + f" [{time.monotonic() - t0:.0f} s]")
        print("\nIn plain words:")
        for w in words:
            print("  " + w)


def main() -> int:
    anyio.run(advise)
    return 0


if __name__ == "__main__":
    sys.exit(main())
