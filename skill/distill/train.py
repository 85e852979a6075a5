"""One flat training loop for teachers, scratch students and distilled students (nanoGPT style)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from skill.distill.losses import FEATURE_LOSSES, RELATION_LOSSES, dkd_loss, kd_loss

Progress = Callable[[str], None]


class Stopped(Exception):
    """The time budget ran out or the caller cancelled; the run reports what it has."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Clock:
    """Hard deadline plus a cancel flag, checked between steps."""

    deadline: float
    stop: Callable[[], bool] = lambda: False

    def check(self) -> None:
        if self.stop():
            raise Stopped("cancelled")
        if time.monotonic() > self.deadline:
            raise Stopped("time_budget")


@dataclass
class Teacher:
    """What a student learns from: a module to run, and/or logits precomputed on the training inputs."""

    module: nn.Module | None = None
    cached_logits: torch.Tensor | None = None  # aligned with the KD inputs when given

    def outputs(self, x: torch.Tensor, index: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        if self.cached_logits is not None and index is not None:
            return self.cached_logits[index], None, []
        assert self.module is not None
        with torch.no_grad():
            out = self.module(x)
        if isinstance(out, tuple):
            return out[0], out[1], out[2]
        return out, None, []


@dataclass
class Recipe:
    method: str = "none"  # none (cross-entropy), response, feature, relation
    temperature: float = 4.0
    kd_loss_weight: float = 0.9
    feature_loss: str = "fitnet"
    relation_loss: str = "sp"
    augment: str = "none"
    response_loss: str = "kd"  # kd or dkd
    dkd_alpha: float = 1.0
    dkd_beta: float = 8.0
    hint_weight: float = 1.0
    attention_weight: float = 1000.0


@dataclass
class Result:
    model: nn.Module
    val_accuracy: float
    epochs_run: int
    history: list[float] = field(default_factory=list)
    stopped: str | None = None  # "time_budget" or "cancelled" when cut short


def accuracy_of(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        out = model(X)
        logits = out[0] if isinstance(out, tuple) else out
    return float((logits.argmax(1) == y).float().mean())


def _augment(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Function matching (Beyer et al. 2022): one augmented input seen by both teacher and student."""
    if kind == "mixup":
        lam = float(torch.rand(1, generator=generator))  # Beta(1, 1), drawn from the seeded generator
        perm = torch.randperm(len(x), generator=generator)
        return lam * x + (1 - lam) * x[perm]
    if kind == "noise":
        return x + 0.1 * x.std() * torch.randn(x.shape, generator=generator)
    return x


def train(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    has_label: torch.Tensor,
    X_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    recipe: Recipe,
    teacher: Teacher | None,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: int,
    seed: int,
    clock: Clock,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> Result:
    """Train `model`, keep the weights of the best validation epoch. X may include unlabeled rows (has_label False)."""
    generator = torch.Generator().manual_seed(seed)  # same batch order for paired runs
    extra = nn.ModuleList()
    if recipe.method == "feature" and recipe.feature_loss == "fitnet":
        assert teacher is not None and teacher.module is not None
        with torch.no_grad():
            t_dim = teacher.outputs(X[:2], None)[1].shape[1]
        extra.append(nn.Linear(model.feature_dim, t_dim))  # FitNets regressor, trained with the student
    optimizer = torch.optim.Adam(list(model.parameters()) + list(extra.parameters()), lr=lr)
    best_state, history = copy.deepcopy(model.state_dict()), []
    uses_teacher = recipe.method != "none" and teacher is not None
    rows = torch.arange(len(X)) if uses_teacher else torch.nonzero(has_label).flatten()
    stopped = None
    state = {"best_acc": -1.0, "best": best_state, "stale": 0, "epochs": 0}
    try:
        _loop(model, extra, optimizer, X, y, has_label, X_val, y_val, rows, generator, recipe, teacher, uses_teacher,
              epochs, batch_size, patience, clock, on_epoch, history, state)
    except Stopped as exc:
        stopped = exc.reason
    best_acc, best_state, epochs_run = state["best_acc"], state["best"], state["epochs"]
    model.load_state_dict(best_state)
    model.eval()
    return Result(model=model, val_accuracy=best_acc, epochs_run=epochs_run, history=history, stopped=stopped)


def _loop(model, extra, optimizer, X, y, has_label, X_val, y_val, rows, generator, recipe, teacher, uses_teacher,  # type: ignore[no-untyped-def]
          epochs, batch_size, patience, clock, on_epoch, history, state) -> None:
    """The epochs; `state` keeps the best weights so a stop mid-epoch still returns them."""
    for epoch in range(epochs):
        model.train()
        order = rows[torch.randperm(len(rows), generator=generator)]
        total = 0.0
        for start in range(0, len(order), batch_size):
            clock.check()
            index = order[start : start + batch_size]
            xb, yb, lab = X[index], y[index], has_label[index]
            augmented = recipe.augment != "none" and uses_teacher
            x_in = _augment(xb, recipe.augment, generator) if augmented else xb
            logits, feat, maps = model(x_in)
            loss = torch.zeros(())
            # hard-label cross-entropy on labelled rows of the clean batch
            if lab.any():
                clean_logits = model(xb)[0] if augmented else logits
                ce = F.cross_entropy(clean_logits[lab], yb[lab])
                loss = loss + (1 - recipe.kd_loss_weight if uses_teacher else 1.0) * ce
            if uses_teacher:
                t_logits, t_feat, t_maps = teacher.outputs(x_in, None if augmented else index)
                T = recipe.temperature
                # soft term, always times T^2; relation/feature terms add to it
                if recipe.response_loss == "dkd":
                    target = torch.where(lab, yb, t_logits.argmax(1))  # unlabelled rows: the teacher's class
                    soft = dkd_loss(logits, t_logits, target, T, recipe.dkd_alpha, recipe.dkd_beta)
                else:
                    soft = kd_loss(logits, F.softmax(t_logits / T, dim=1), T)
                loss = loss + recipe.kd_loss_weight * soft
                if recipe.method == "feature":
                    if recipe.feature_loss == "fitnet":
                        loss = loss + recipe.hint_weight * FEATURE_LOSSES["fitnet"](extra[0](feat), t_feat)
                    else:
                        loss = loss + recipe.attention_weight * FEATURE_LOSSES["attention"](maps, t_maps)
                elif recipe.method == "relation":
                    loss = loss + RELATION_LOSSES[recipe.relation_loss](feat, t_feat if t_feat is not None else t_logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        state["epochs"] = epoch + 1
        val_acc = accuracy_of(model, X_val, y_val)
        history.append(val_acc)
        if on_epoch:
            on_epoch(epoch + 1, total / max(len(order), 1), val_acc)
        if val_acc > state["best_acc"]:
            state.update(best_acc=val_acc, best=copy.deepcopy(model.state_dict()), stale=0)
        else:
            state["stale"] += 1
            if state["stale"] >= patience:
                break
        model.train()
