"""Model weights in and out as safetensors (tensors only: a pickled checkpoint could run code), the epoch checkpoints
a resume reads, model sizes, and the checks that make a model that does not fit the data, or a student no smaller
than its teacher, fail in one line before any process group exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from kd_recipe import RecipeError
from kd_recipe.distributed import atomic_write
from kd_recipe.teacher import split_outputs


def load_weights(model: nn.Module, path: Path, field: str) -> None:
    from safetensors.torch import load_file

    if not path.is_file():
        raise RecipeError(field, f"{path} does not exist")
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as exc:  # wrong keys or shapes
        raise RecipeError(field, f"{path.name} does not fit the model: {str(exc).splitlines()[0][:200]}") from exc


def save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))


def probe_outputs(role: str, model: nn.Module, train: Dataset, classes: int) -> None:
    """One forward pass on one training row, so a model that does not fit the data fails here in one line."""
    x = torch.as_tensor(train[0][0]).unsqueeze(0)
    try:
        with torch.no_grad():
            logits, _ = split_outputs(model.eval()(x))
    except Exception as exc:  # any failure of the user's forward on the data's shape
        raise RecipeError(
            f"{role}.model", f"fails on one training input of shape {tuple(x.shape)}: {str(exc).splitlines()[0][:200]}"
        ) from exc
    model.train()
    if logits.dim() != 2 or logits.shape[1] < classes:
        raise RecipeError(
            f"{role}.model",
            f"returns outputs of shape {tuple(logits.shape)}; expected (batch, {classes}) logits for {classes} classes",
        )


def size_of(model: nn.Module) -> dict[str, int]:
    """Parameters, and the bytes of parameters plus buffers (what a saved state dict holds)."""
    tensors = [*model.parameters(), *model.buffers()]
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "bytes": sum(t.numel() * t.element_size() for t in tensors),
    }


def check_sizes(
    teacher: nn.Module,
    student: nn.Module,
    student_model: str,
    widths: list[int] | None,
    build: Callable[[int], nn.Module],
) -> None:
    """The student must not outgrow its teacher; nor may the curve's extra students (--student-sizes, built by
    `build(width)`): runner nets only, each with 1 to the teacher's parameters."""
    t_params, s_params = size_of(teacher)["params"], size_of(student)["params"]
    if s_params > t_params:
        raise RecipeError(
            "student.model",
            f"the student has {s_params:,} parameters, more than the teacher's "
            f"{t_params:,}; distil into a smaller model",
        )
    if not widths:
        return
    if student_model not in ("mlp", "cnn"):
        raise RecipeError("--student-sizes", f"sizes runner-net students ('mlp', 'cnn'), not {student_model!r}")
    for width in widths:
        params = size_of(build(width))["params"]
        if width < 1 or params > t_params:
            raise RecipeError(
                "--student-sizes",
                f"width {width} gives {params:,} parameters; a student needs 1 to {t_params:,} (the teacher's)",
            )


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, state: dict[str, Any]
) -> None:
    """The epoch's checkpoint (weights, optimizer, loss scaler, progress), written atomically: a resume reads it."""
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "state": state,
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, device: torch.device
) -> dict[str, Any]:
    """Put the weights, optimizer and loss scaler back as save_checkpoint wrote them; return the progress."""
    saved = torch.load(path, map_location=device, weights_only=True)  # tensors and plain values, never code
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scaler.load_state_dict(saved["scaler"])
    state: dict[str, Any] = saved["state"]
    return state
