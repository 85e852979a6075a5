"""One flat training loop (nanoGPT style) that trains a whole stack of small nets at once.

Every model of a quick distill (teachers; scratch students over a learning-rate grid; distilled students over the
T x weight grid; all seeds) is the same architecture, so the stack is trained as one batched model with
torch.func (stack_module_state + functional_call + vmap). Each member keeps its own initial weights, batch order,
learning rate and loss weights, and its own best-validation weights, exactly as if trained alone: Adam is
element-wise, and the members' losses are summed, so no gradient crosses between members. Python overhead per
step is paid once for the stack instead of once per model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import stack_module_state

from skill.distill import nets
from skill.distill.losses import FEATURE_LOSSES, RELATION_LOSSES, ce_per_member, dkd_loss, kd_per_member

if TYPE_CHECKING:
    from skill.distill.targets import SoftTargets, TargetBatch


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

    def left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class Recipe:
    """How members that learn from soft targets compute their extra losses (shared by the whole stack)."""

    method: str = "response"  # response, feature, relation
    response_loss: str = "kd"  # kd or dkd
    feature_loss: str = "fitnet"
    relation_loss: str = "sp"
    augment: str = "none"
    dkd_alpha: float = 1.0
    dkd_beta: float = 8.0


@dataclass
class Member:
    """One model of the stack. kd_weight or aux_weight above 0 makes it a learner from soft targets: it then walks
    the whole transfer set; otherwise it walks the labelled rows only, for the same number of steps (step-matched)."""

    role: str  # teacher, scratch, distilled, peer, generation
    seed: int  # initial weights
    lr: float
    order_seed: int | None = None  # batch order; defaults to seed (paired runs share it)
    temperature: float = 1.0
    ce_weight: float = 1.0
    kd_weight: float = 0.0
    aux_weight: float = 0.0  # hint, attention or relation term

    @property
    def learns_from_targets(self) -> bool:
        return self.kd_weight > 0 or self.aux_weight > 0


@dataclass
class TrainSpec:
    """Everything one training stack needs; `build` makes one (untrained) net of the shared architecture."""

    build: Callable[[], nets.StudentNet]
    members: list[Member]
    X: torch.Tensor  # student inputs, labelled rows and transfer-set rows
    y: torch.Tensor
    has_label: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    epochs: int
    batch_size: int
    patience: int
    clock: Clock
    recipe: Recipe = field(default_factory=Recipe)
    targets: SoftTargets | None = None
    hint_dim: int | None = None  # FitNets regressor output width (the teacher's feature width)
    on_epoch: Callable[[int, float, list[float]], None] | None = None
    max_steps: int | None = None  # a probe: stop after this many steps (used to estimate the run's time)
    step_seconds: list[float] = field(default_factory=list)  # filled by a probe: the wall time of each step
    device: torch.device = field(
        default_factory=lambda: torch.device("cpu")
    )  # X, y, has_label, X_val, y_val live there already
    epoch_rows: int | None = (
        None  # rows per epoch for every member (default: the most any member walks); step-matches stacks trained apart
    )


@dataclass
class Result:
    model: nn.Module  # on the CPU, whatever device trained it
    val_accuracy: float  # -1 when no epoch finished
    epochs_run: int
    steps: int
    stopped: str | None = None  # "time_budget" or "cancelled" when cut short
    curve: tuple[float, ...] = ()  # validation accuracy after each epoch it trained

    @property
    def stopped_by(self) -> str:
        """Why this member ended: early stopping (also when the clock later stopped its stack), the epoch cap, or
        the clock that stopped its stack."""
        if self.stopped and not self.done_early:
            return self.stopped
        return "epoch_cap" if self.epochs_run >= self.planned_epochs else "early_stopping"

    planned_epochs: int = 0
    done_early: bool = False  # its patience ran out before the stack ended (`stopped` is the stack's reason)


# (logits, features, FitNets hints or the features, conv maps); stacked: each with a leading member dim
StackOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]


class _WithRegressor(nn.Module):
    """The net plus an optional FitNets regressor, so the whole student is one stackable module."""

    def __init__(self, net: nets.StudentNet, hint_dim: int | None) -> None:
        super().__init__()
        self.net = net
        self.regressor = nn.Linear(net.feature_dim, hint_dim) if hint_dim else None

    def forward(self, x: torch.Tensor) -> StackOutput:
        logits, feat, maps = self.net(x)
        return logits, feat, self.regressor(feat) if self.regressor is not None else feat, list(maps)


class _Stack:
    """Stacked parameters of M nets (plus their FitNets regressors) and their batched forward."""

    def __init__(self, modules: list[_WithRegressor]) -> None:
        params, _ = stack_module_state(list(modules))
        self.params = {k: v.detach().requires_grad_() for k, v in params.items()}
        self.template = modules[0].net
        self.has_regressor = modules[0].regressor is not None
        self.size = len(modules)

    def __call__(self, x: torch.Tensor, shared: bool = False) -> StackOutput:
        """x is [M, B, ...] (one batch per member), or [B, ...] for all members when shared."""
        if shared:
            x = x.expand(self.size, *x.shape)
        logits, feat, maps = nets.stacked_forward(self.template, self.params, x, prefix="net.")
        hint = nets._linear(self.params, "regressor", feat) if self.has_regressor else feat
        return logits, feat, hint, maps


class _StackedAdam:
    """torch's Adam over the stacked tensors (fused where the build has it); a per-member learning rate is applied
    exactly by running Adam at lr 1 and scaling each member's step, since Adam's update is linear in lr."""

    def __init__(self, params: list[torch.Tensor], lrs: list[float]) -> None:
        same = len(set(lrs)) == 1
        self.lrs = None if same else torch.tensor(lrs, device=params[0].device)
        lr = lrs[0] if same else 1.0
        try:
            self.opt = torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError):  # a torch build without the fused CPU kernel
            self.opt = torch.optim.Adam(params, lr=lr, foreach=True)
        self.params = params

    def step(self) -> None:
        if self.lrs is None:
            self.opt.step()
            return
        before = [p.detach().clone() for p in self.params]
        self.opt.step()
        with torch.no_grad():
            for p, old in zip(self.params, before, strict=True):
                p.copy_(torch.lerp(old, p, self.lrs.view(-1, *[1] * (p.dim() - 1))))

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)


def _augment(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Function matching (Beyer et al. 2022): one augmented input per member, seen by its teacher and by it.
    x: [M, B, F]."""
    if kind == "mixup":
        lam = torch.rand(x.shape[0], 1, 1, generator=generator).to(x.device)  # Beta(1, 1) per member
        perm = torch.rand(x.shape[:2], generator=generator).argsort(1).to(x.device)
        return lam * x + (1 - lam) * torch.gather(x, 1, perm.unsqueeze(-1).expand_as(x))
    if kind == "noise":
        return x + 0.1 * x.std(dim=(1, 2), keepdim=True) * torch.randn(x.shape, generator=generator).to(x.device)
    return x


def _orders(spec: TrainSpec, rows: list[torch.Tensor], length: int, generators: list[torch.Generator]) -> torch.Tensor:
    """Each member's rows for one epoch of `length` steps' worth of rows: fresh permutations of its own rows,
    repeated when it has fewer rows (a scratch student beside a transfer set gets as many steps as the distilled
    one)."""
    out, seen = [], {}
    for member, own, gen in zip(spec.members, rows, generators, strict=True):
        key = (member.order_seed if member.order_seed is not None else member.seed, member.learns_from_targets)
        if key not in seen:
            parts, have = [], 0
            while have < length:
                parts.append(own[torch.randperm(len(own), generator=gen)])
                have += len(own)
            seen[key] = torch.cat(parts)[:length]
        out.append(seen[key])
    return torch.stack(out)


def _soft_terms(
    spec: TrainSpec,
    out: StackOutput,
    batch_targets: TargetBatch,
    labels: torch.Tensor,
    has_label: torch.Tensor,
    T: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member: the soft (KD or DKD) term and the auxiliary (hint, attention or relation) term, each [M]."""
    logits, feat, hint, maps = out
    r, zeros = spec.recipe, torch.zeros(len(spec.members), device=logits.device)
    if r.response_loss == "dkd":
        target = torch.where(has_label, labels, batch_targets.logits.argmax(-1))  # unlabelled rows: the teacher's class
        soft = dkd_loss(logits, batch_targets.logits, target, T, r.dkd_alpha, r.dkd_beta)
    else:
        soft = kd_per_member(logits, batch_targets.logits, T)
    aux = zeros
    if r.method == "feature" and r.feature_loss == "fitnet":
        assert batch_targets.feat is not None, "feature targets come with a feature method"
        aux = (hint - batch_targets.feat).pow(2).mean(dim=(1, 2))
    elif r.method == "feature":  # a loop over members: these losses have no fast batching rule in torch.func
        assert batch_targets.maps is not None, "attention maps come with a feature method"
        aux = torch.stack(
            [
                FEATURE_LOSSES["attention"]([m[i] for m in maps], [m[i] for m in batch_targets.maps])
                for i in range(len(T))
            ]
        )
    elif r.method == "relation":
        other = batch_targets.feat if batch_targets.feat is not None else batch_targets.logits
        aux = torch.stack([RELATION_LOSSES[r.relation_loss](feat[i], other[i]) for i in range(len(T))])
    return soft, aux


@dataclass
class _Members:
    """The stack's per-member settings as tensors on the training device, and which rows each walks."""

    T: torch.Tensor
    w_ce: torch.Tensor
    w_kd: torch.Tensor
    w_aux: torch.Tensor
    augmented: torch.Tensor  # members that see augmented inputs (learners, when the recipe augments)
    any_augmented: bool
    uses_targets: bool
    rows: list[torch.Tensor]  # the row indices each member walks (labelled rows only for non-learners)
    length: int  # rows per epoch for every member

    @classmethod
    def of(cls, spec: TrainSpec) -> _Members:
        members, dev = spec.members, spec.device
        weights = (torch.tensor([getattr(m, k) for m in members], device=dev) for k in ("ce_weight", "kd_weight"))
        learners = torch.tensor([m.learns_from_targets for m in members], device=dev)
        augmented = learners if spec.recipe.augment != "none" else torch.zeros_like(learners)
        labelled = torch.nonzero(spec.has_label).flatten().cpu()  # orders are drawn on the CPU (seeded generators)
        everything = torch.arange(len(spec.X))
        rows = [everything if m.learns_from_targets else labelled for m in members]
        return cls(
            T=torch.tensor([m.temperature for m in members], device=dev),
            w_ce=next(weights),
            w_kd=next(weights),
            w_aux=torch.tensor([m.aux_weight for m in members], device=dev),
            augmented=augmented,
            any_augmented=bool(augmented.any()),
            uses_targets=spec.targets is not None and bool(learners.any()),
            rows=rows,
            length=spec.epoch_rows or max(len(r) for r in rows),
        )


def _batch_loss(
    spec: TrainSpec, stack: _Stack, per: _Members, index: torch.Tensor, aug: torch.Generator
) -> torch.Tensor:
    """Each member's loss [M] on its batch `index` [M, b]: hard-label cross-entropy on the labelled rows of the clean
    batch, plus the soft and auxiliary terms for learners (the soft terms carry T^2 inside the loss functions)."""
    xb, yb, lab = spec.X[index], spec.y[index], spec.has_label[index]
    x_in = xb
    if per.any_augmented:
        x_in = torch.where(per.augmented.view(-1, *[1] * (xb.dim() - 1)), _augment(xb, spec.recipe.augment, aug), xb)
    out = stack(x_in)
    clean_logits = stack(xb)[0] if per.any_augmented else out[0]
    loss = per.w_ce * ce_per_member(clean_logits, yb, lab)
    if per.uses_targets and spec.targets is not None:
        batch_targets = spec.targets.get(index, x_in, out[0].detach())
        soft, aux = _soft_terms(spec, out, batch_targets, yb, lab, per.T)
        loss = loss + per.w_kd * soft + per.w_aux * aux
    return loss


@dataclass
class _Best:
    """Per member: the weights and accuracy of its best validation epoch, epochs without improvement, the epochs it
    trained and its validation curve; `done` once its patience ran out."""

    weights: dict[str, torch.Tensor]
    accuracy: torch.Tensor
    stale: torch.Tensor
    done: torch.Tensor
    epochs_run: torch.Tensor
    curves: list[list[float]]

    @classmethod
    def start(cls, stack: _Stack, device: torch.device) -> _Best:
        M = stack.size
        return cls(
            weights={k: v.detach().clone() for k, v in stack.params.items()},
            accuracy=torch.full((M,), -1.0, device=device),
            stale=torch.zeros(M, dtype=torch.long, device=device),
            done=torch.zeros(M, dtype=torch.bool, device=device),
            epochs_run=torch.zeros(M, dtype=torch.long, device=device),
            curves=[[] for _ in range(M)],
        )

    def update(self, epoch: int, val_acc: torch.Tensor, stack: _Stack, patience: int) -> None:
        """After an epoch: the members still training record it, keep improved weights, and count patience."""
        active = ~self.done
        self.epochs_run[active] = epoch + 1
        for curve, acc, on in zip(self.curves, val_acc.tolist(), active.tolist(), strict=True):
            if on:
                curve.append(acc)
        improved = active & (val_acc > self.accuracy)
        for k, current in stack.params.items():
            keep = improved.view(-1, *[1] * (current.dim() - 1))
            self.weights[k] = torch.where(keep, current.detach(), self.weights[k])
        self.accuracy = torch.where(improved, val_acc, self.accuracy)
        self.stale = torch.where(improved, torch.zeros_like(self.stale), self.stale + 1)
        self.done = self.done | (self.stale >= patience)


def _results(spec: TrainSpec, best: _Best, steps_per_epoch: int, stopped: str | None) -> list[Result]:
    """Each member's best-validation net (on the CPU) and how its training went."""
    results = []
    for i in range(len(spec.members)):
        net = spec.build()
        weights = best.weights.items()
        net.load_state_dict({k[len("net.") :]: v[i].detach().cpu() for k, v in weights if k.startswith("net.")})
        net.eval()
        results.append(
            Result(
                model=net,
                val_accuracy=float(best.accuracy[i]),
                epochs_run=int(best.epochs_run[i]),
                steps=int(best.epochs_run[i]) * steps_per_epoch,
                stopped=stopped,
                curve=tuple(best.curves[i]),
                planned_epochs=spec.epochs,
                done_early=bool(best.done[i]),
            )
        )
    return results


def train(spec: TrainSpec) -> list[Result]:
    """Train every member of the stack; each keeps the weights of its best validation epoch and stops after
    `patience` epochs without improvement (the stack ends when all have stopped)."""
    modules = []
    for m in spec.members:
        torch.manual_seed(m.seed)  # same seed, same initial weights: paired runs start from one point
        modules.append(_WithRegressor(spec.build(), spec.hint_dim).to(spec.device))
    stack = _Stack(modules)
    optimizer = _StackedAdam(list(stack.params.values()), [m.lr for m in spec.members])
    generators = [torch.Generator().manual_seed(m.seed if m.order_seed is None else m.order_seed) for m in spec.members]
    aug_gen = torch.Generator().manual_seed(spec.members[0].seed + 17)
    per = _Members.of(spec)
    steps_per_epoch = math.ceil(per.length / spec.batch_size)
    best = _Best.start(stack, spec.device)
    stopped, steps = None, 0
    try:
        for epoch in range(spec.epochs):
            order = _orders(spec, per.rows, per.length, generators).to(spec.device)
            total = torch.zeros((), device=spec.device)
            for start in range(0, per.length, spec.batch_size):
                spec.clock.check()
                t_step = time.perf_counter()
                index = order[:, start : start + spec.batch_size]  # [M, b]
                loss = _batch_loss(spec, stack, per, index, aug_gen)
                optimizer.zero_grad()
                loss.sum().backward()
                optimizer.step()
                total = total + loss.detach().mean() * index.shape[1]
                steps += 1
                if spec.max_steps is not None:
                    spec.step_seconds.append(time.perf_counter() - t_step)
                    if steps >= spec.max_steps:
                        return []
            with torch.no_grad():  # validation: every member on the same split, one batched forward
                val_acc = (stack(spec.X_val, shared=True)[0].argmax(-1) == spec.y_val).float().mean(1)
            best.update(epoch, val_acc, stack, spec.patience)
            if spec.on_epoch:
                spec.on_epoch(epoch + 1, float(total) / per.length, val_acc.tolist())
            if bool(best.done.all()):
                break
    except Stopped as exc:
        stopped = exc.reason
    return _results(spec, best, steps_per_epoch, stopped)
