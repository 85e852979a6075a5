"""Model weights in and out as safetensors (tensors only: a pickled checkpoint could run code), and the probe that
makes a model that does not fit the data fail in one line before any process group exists."""

from __future__ import annotations

from pathlib import Path

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
