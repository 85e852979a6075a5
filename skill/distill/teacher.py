"""Get a teacher: train one here, load the user's TorchScript file, or read precomputed logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from skill.errors import InputError


def load_torchscript(path: Path) -> torch.nn.Module:
    """torch.jit.load only: a pickled object posing as weights is refused, never unpickled."""
    if not path.is_file():
        raise InputError("teacher", f"{path} does not exist")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise InputError("teacher", f"{path.name} is not a TorchScript archive (export with torch.jit.script or trace), "
                         f"and pickled objects are refused: {str(exc).splitlines()[0][:160]}") from exc
    module.eval()
    return module


def load_logits(path: Path, n_train_total: int, n_test: int, num_classes: int) -> dict[str, np.ndarray]:
    """Teacher logits aligned with the dataset: logits_train (all X_train rows), logits_test, optional logits_unlabeled."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception as exc:
        raise InputError("teacher", f"{path.name} is not a readable .npz of plain arrays: {exc}") from exc
    for key, rows in (("logits_train", n_train_total), ("logits_test", n_test)):
        if key not in arrays:
            raise InputError("teacher", f"{path.name} lacks {key}")
        a = arrays[key]
        if a.ndim != 2 or a.shape != (rows, num_classes):
            raise InputError("teacher", f"{key} has shape {a.shape}; expected ({rows}, {num_classes}) aligned with the dataset")
        if not np.isfinite(a).all():
            raise InputError("teacher", f"{key} contains NaN or infinity")
    return {k: v.astype(np.float32) for k, v in arrays.items()}
