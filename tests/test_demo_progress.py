"""The demo's progress is readable: one redrawn line on a terminal, a line every few seconds in a log."""

from __future__ import annotations

import importlib.util
import io
import os
import pty
import select
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("kd_demo", ROOT / "scripts" / "demo.py")
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)  # type: ignore[union-attr]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _feed(line, clock: Clock, updates: int = 500, step_s: float = 0.05) -> None:
    """500 epoch updates over 25 s, as a default quick distill sends them."""
    for i in range(1, updates + 1):
        clock.now += step_s
        line(i, updates, f"epoch {i}")
    line.close()


def test_a_log_gets_a_line_every_few_seconds_and_the_last_one():
    out, clock = io.StringIO(), Clock()
    _feed(demo.ProgressLine(out, every_s=5.0, clock=clock), clock)
    lines = out.getvalue().splitlines()
    assert 5 <= len(lines) <= 7, lines  # 25 s at one line per 5 s, plus the final one
    assert lines[-1].strip() == "500/500 epoch 500" and "\r" not in out.getvalue()


def test_a_terminal_gets_one_line_redrawn_in_place():
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as tty, os.fdopen(leader, "rb", buffering=0) as screen:
        clock = Clock()
        _feed(demo.ProgressLine(tty, clock=clock), clock, updates=20)
        tty.flush()
        chunks = []
        while select.select([screen], [], [], 0.5)[0]:  # a pty hands the output over in pieces
            chunks.append(screen.read(65536))
        shown = b"".join(chunks).decode()
    assert shown.count("\r") >= 20 and shown.count("\n") == 1, repr(shown[-200:])  # the pty turns the final \n into \r\n
    assert "[########################] epoch 20" in shown


def test_a_message_before_the_total_is_known_has_no_fraction():
    out, clock = io.StringIO(), Clock()
    demo.ProgressLine(out, every_s=5.0, clock=clock)(0, None, "starting: loading PyTorch")
    assert out.getvalue() == "  starting: loading PyTorch\n"  # not '0/0 starting'


def test_the_demo_shows_one_case_where_distillation_helps_and_one_where_it_does_not():
    from skill.distill.config import DistillConfig

    names = [name for name, _, _ in demo.CASES]
    assert names == ["signal", "digits"]
    for _, _, arguments in demo.CASES:
        config = DistillConfig.model_validate(arguments)  # the server accepts it
        assert config.seeds >= 3 and config.time_budget_s <= 60  # a verdict needs three seeds; the plan fits the budget
    signal = dict(demo.CASES[0][2])
    assert (ROOT / signal["teacher"]).stat().st_size < 100_000  # only a small teacher ships; the data is generated from its seed
    report = {"teacher": {"accuracy": 0.97}, "scratch": {"accuracy": 0.971}, "verdict": "",
              "comparison": {"verdict": "inconclusive", "mean_gain_points": -0.1, "interval": [-0.9, 0.5], "pairs": [{}, {}, {}]}}
    assert "nothing to give" in demo.plain_words("digits", report) and "inconclusive" in demo.plain_words("digits", report)
    report["comparison"] |= {"verdict": "gain", "mean_gain_points": 13.4, "interval": [6.4, 20.4]}
    assert "HELPS" in demo.plain_words("signal", report) and "+6.4 to +20.4" in demo.plain_words("signal", report)


def test_the_signal_task_is_generated_the_same_every_time(tmp_path):
    import numpy as np

    import importlib.util as iu

    spec_ = iu.spec_from_file_location("signal_task", ROOT / "scripts" / "signal_task.py")
    task = iu.module_from_spec(spec_)
    spec_.loader.exec_module(task)  # type: ignore[union-attr]
    a, b = task.write_data(tmp_path / "a"), task.write_data(tmp_path / "b")
    with np.load(a) as x, np.load(b) as y:
        assert all(np.array_equal(x[k], y[k]) for k in x.files) and x["X_unlabeled"].shape == (4000, 64) and len(x["y_train"]) == 300


def test_the_demo_gates_check_the_student_it_diagnosed():
    calls = dict(demo.SESSION)
    diagnosed, gated = calls["kd_diagnose_failure"], calls["kd_check_quality_gates"]
    # one student through the whole session: a reader would otherwise see T = 1 diagnosed and T = 4 shipped
    assert gated["temperature"] == diagnosed["training_temperature"] and gated["accuracy"] == diagnosed["overall_accuracy"]
    worst = min(diagnosed["per_class_accuracy"].values())
    assert gated["per_class_thresholds_met"] is False and worst < 0.7 * diagnosed["overall_accuracy"]


def test_setup_installs_once_and_again_only_when_the_project_changes(tmp_path):
    """demo.sh and test.sh run setup.sh every time; with nothing changed it must not reinstall (minutes, and warnings)."""
    import shutil
    import subprocess

    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    fake = tmp_path / ".venv" / "bin" / "python"  # stands in for the venv's interpreter: records each pip call
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls.log"}\n')
    fake.chmod(0o755)

    def setup() -> int:
        subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path, check=True, env={**os.environ, "PYTHON": "python3"}, timeout=60)
        log = tmp_path / "calls.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    assert setup() == 3  # pip, torch, the project
    assert setup() == 3  # nothing changed: nothing installed
    (tmp_path / "pyproject.toml").write_text((tmp_path / "pyproject.toml").read_text() + "\n# a new dependency\n")
    assert setup() == 6  # the project changed: installed again
