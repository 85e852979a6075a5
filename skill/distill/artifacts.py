"""Write the run's artifacts atomically (temporary name, then rename) through a folder descriptor: weights, report,
plot.

Under the MCP server the folder is the descriptor the server opened (a staging folder it renames into place only
when the run finished), so a path swapped meanwhile cannot redirect a write; the CLI opens its own fresh folder.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from skill.distill import sources
from skill.distill.report import Artifacts
from skill.distill.teacher import net_spec_metadata
from skill.paths import write_file_at

if TYPE_CHECKING:
    from skill.distill.report import DistillReport


def fresh_output_dir(requested: str | None) -> Path:
    """A new folder per run; an existing non-empty folder is never written into."""
    folder = (
        Path(requested) if requested else Path("kd_runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    )
    if folder.exists() and any(folder.iterdir()):
        folder = folder / f"run-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _plot(report: DistillReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    models = [
        (n, m, c)
        for (n, m), c in zip(
            (("teacher", report.teacher), ("scratch", report.scratch), ("distilled", report.distilled)),
            ("#444", "#c55", "#37a"),
            strict=True,
        )
        if m is not None
    ]
    ax1.plot([0, 1], [0, 1], ":", color="gray", lw=1)
    for name, m, colour in models:
        if m.reliability:
            conf, acc, _ = zip(*m.reliability, strict=True)
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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def write_artifacts(
    report: DistillReport,
    student: torch.nn.Module,
    requested: str | None,
    scaler: dict[str, torch.Tensor] | None = None,
    saved_student: str | None = None,
) -> Artifacts:
    from safetensors.torch import save

    given_fd = sources.output_dir_fd(requested)
    # a descriptor is only ever given for a requested folder (the MCP server's staging folder)
    folder = Path(requested) if given_fd is not None and requested is not None else fresh_output_dir(requested)
    folder_fd = given_fd if given_fd is not None else os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        state = {k: v.detach().contiguous() for k, v in student.state_dict().items()}
        # the metadata lets this student be loaded back as a safetensors teacher of a later run
        meta = net_spec_metadata(report.settings.arch, report.settings.student_hidden, scaler)
        write_file_at(folder_fd, "student.safetensors", save(state, metadata=meta))
        write_file_at(folder_fd, "plot.png", _plot(report))
        scaler_name: str | None = None
        if scaler is not None:  # the input scaling the student was trained with: without it the weights are unusable
            scaler_name = "scaler.safetensors"
            write_file_at(folder_fd, scaler_name, save({k: v.contiguous() for k, v in scaler.items()}))
        artifacts = Artifacts(
            output_dir=str(folder),
            student_weights=str(folder / "student.safetensors"),
            report=str(folder / "report.json"),
            plot=str(folder / "plot.png"),
            scaler=str(folder / scaler_name) if scaler_name else None,
            saved_student=saved_student,
        )
        report.artifacts = artifacts
        write_file_at(folder_fd, "report.json", report.model_dump_json(indent=2).encode())
    finally:
        if given_fd is None:
            os.close(folder_fd)
    return artifacts
