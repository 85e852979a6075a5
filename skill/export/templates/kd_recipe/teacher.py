"""The frozen teacher's signal: a forward pass under no_grad each step, or logits cached to disk in one first pass."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from kd_recipe.data import length
from kd_recipe.distributed import Dist, atomic_write


def split_outputs(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits and (when the model returns a tuple, as the runner's nets do) its features."""
    if isinstance(out, (tuple, list)):
        return out[0], out[1] if len(out) > 1 and isinstance(out[1], torch.Tensor) else None
    return out, None


class TeacherSignal:
    """The frozen teacher: run in eval() under no_grad, or read from logits cached to disk in a first pass."""

    def __init__(self, model: nn.Module, cached: torch.Tensor | None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.cached = cached

    def __call__(self, x: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.cached is not None:
            return self.cached[index.to(self.cached.device)].float(), None
        with torch.no_grad():
            logits, feat = split_outputs(self.model(x))
        return logits.float(), feat


def cache_teacher_logits(env: Dist, teacher: nn.Module, train: Dataset, out: Path, batch: int) -> torch.Tensor:
    """Each rank computes rows rank::world once, saves them as float16, then every rank reads all shards.
    The folder is named by a hash of the teacher's weights, so a retrained teacher never reads stale logits."""
    digest = hashlib.sha256()
    for tensor in teacher.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    folder = out / "teacher_logits" / digest.hexdigest()[:16]
    if env.main:
        folder.mkdir(parents=True, exist_ok=True)
    env.barrier()
    n = length(train)
    mine = folder / f"rank{env.rank}of{env.world}.npz"
    if not mine.is_file():
        rows = list(range(env.rank, n, env.world))
        parts = []
        teacher.eval()
        with torch.no_grad():
            for x, _ in DataLoader(Subset(train, rows), batch_size=batch, shuffle=False):
                parts.append(split_outputs(teacher(x.to(env.device)))[0].float().cpu())
        logits = np.clip(torch.cat(parts).numpy(), -6e4, 6e4).astype(np.float16)  # float16 tops out at 65504

        def save(tmp: Path) -> None:
            with tmp.open("wb") as handle:  # a file object: np.savez would append .npz to a path
                np.savez(handle, rows=np.array(rows, np.int64), logits=logits)

        atomic_write(mine, save)
    env.barrier()
    full: np.ndarray | None = None
    for r in range(env.world):
        with np.load(folder / f"rank{r}of{env.world}.npz", allow_pickle=False) as part:
            if full is None:
                full = np.zeros((n, part["logits"].shape[1]), np.float16)
            full[part["rows"]] = part["logits"]
    assert full is not None
    return torch.from_numpy(full).to(env.device)
