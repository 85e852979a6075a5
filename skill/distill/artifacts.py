"""Write the run's artifacts atomically (temporary name, then rename): weights, report, plot."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from skill.distill.report import Artifacts

if TYPE_CHECKING:
    from skill.distill.report import DistillReport


def fresh_output_dir(requested: str | None) -> Path:
    """A new folder per run; an existing non-empty folder is never written into."""
    folder = Path(requested) if requested else Path("kd_runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    if folder.exists() and any(folder.iterdir()):
        folder = folder / f"run-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _atomic(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _plot(report: "DistillReport", path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    models = [(n, m, c) for (n, m), c in zip((("teacher", report.teacher), ("scratch", report.scratch), ("distilled", report.distilled)),
                                            ("#444", "#c55", "#37a")) if m is not None]
    ax1.plot([0, 1], [0, 1], ":", color="gray", lw=1)
    for name, m, colour in models:
        if m.reliability:
            conf, acc, _ = zip(*m.reliability)
            ax1.plot(conf, acc, "o-", color=colour, ms=3, label=f"{name} (ECE {m.ece:.3f})")
    ax1.set(title="Reliability diagram (15 bins)", xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax1.legend(loc="upper left", fontsize=8)
    for name, m, colour in models:
        ax2.scatter(m.params, m.accuracy * 100, s=60, color=colour)
        ax2.annotate(name, (m.params, m.accuracy * 100), textcoords="offset points", xytext=(5, 5))
    ax2.set_xscale("log")
    ax2.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax2.set(title="Accuracy versus size", xlabel="parameters (log scale)", ylabel="test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)


def write_artifacts(report: "DistillReport", student: torch.nn.Module, requested: str | None,
                    scaler: dict[str, torch.Tensor] | None = None, saved_student: str | None = None) -> Artifacts:
    from safetensors.torch import save_file

    folder = fresh_output_dir(requested)
    weights, report_path, plot = folder / "student.safetensors", folder / "report.json", folder / "plot.png"
    state = {k: v.detach().contiguous() for k, v in student.state_dict().items()}
    _atomic(weights, lambda tmp: save_file(state, str(tmp)))
    _atomic(plot, lambda tmp: _plot(report, tmp))
    scaler_path = folder / "scaler.safetensors" if scaler is not None else None
    if scaler_path is not None:  # the input scaling the student was trained with: without it the weights are unusable
        _atomic(scaler_path, lambda tmp: save_file({k: v.contiguous() for k, v in scaler.items()}, str(tmp)))
    artifacts = Artifacts(output_dir=str(folder), student_weights=str(weights), report=str(report_path), plot=str(plot),
                          scaler=str(scaler_path) if scaler_path else None, saved_student=saved_student)
    report.artifacts = artifacts
    _atomic(report_path, lambda tmp: tmp.write_text(report.model_dump_json(indent=2), encoding="utf-8"))
    return artifacts
