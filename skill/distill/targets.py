"""Where soft targets come from: fixed teachers (outputs computed once when inputs are not augmented), an
ensemble that averages probabilities, or the other peers of deep mutual learning."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

CACHE_LIMIT = 50_000_000  # floats kept for cached teacher maps; above it the teacher runs per step instead


@dataclass
class TargetBatch:
    logits: torch.Tensor  # [M, B, C]; log-probabilities are valid logits too
    feat: torch.Tensor | None = None  # [M, B, D]
    maps: list[torch.Tensor] | None = None


class SoftTargets(Protocol):
    def get(self, index: torch.Tensor, x_in: torch.Tensor, student_logits: torch.Tensor) -> TargetBatch: ...


# what a net's forward returns: the runner's nets give (logits, features, maps); a teacher may give logits alone
NetOutput = torch.Tensor | tuple[Any, ...] | list[Any]


def split_outputs(out: NetOutput) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
    """(logits, features or None, maps) from a net's forward; a logits-only teacher has no features."""
    if isinstance(out, (tuple, list)):
        feat = out[1] if len(out) > 1 and isinstance(out[1], torch.Tensor) else None
        maps = list(out[2]) if len(out) > 2 and isinstance(out[2], (list, tuple)) else []
        return out[0], feat, maps
    return out, None, []


class EnsembleTeacher(nn.Module):
    """Weighted mean of the members' probabilities, returned as log-probabilities (so softmax(out / T) softens the
    averaged distribution); features and maps of the best-weighted member for hint and relation losses."""

    def __init__(self, members: list[nn.Module], weights: list[float]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.lead = max(range(len(weights)), key=lambda i: self.weights[i])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        outs = [split_outputs(m(x)) for m in self.members]
        probs = functools.reduce(
            operator.add, [w * F.softmax(o[0], dim=-1) for w, o in zip(self.weights, outs, strict=True)]
        )
        return torch.log(probs.clamp_min(1e-12)), outs[self.lead][1], outs[self.lead][2]


class TeacherTargets:
    """Soft targets from fixed teachers; member i reads teacher `assignment[i]`. `to_teacher` maps student inputs
    back to what the teacher expects (raw features when the student sees standardised ones)."""

    def __init__(
        self,
        teachers: list[nn.Module],
        assignment: list[int],
        X: torch.Tensor,
        *,
        cache: bool,
        to_teacher: Callable[[torch.Tensor], torch.Tensor] | None = None,
        need_maps: bool = False,
        precomputed: torch.Tensor | None = None,
    ) -> None:
        self.teachers, self.to_teacher, self.need_maps = teachers, to_teacher, need_maps
        self.assignment = torch.tensor(assignment)
        self.single = len(set(assignment)) == 1
        self.first = assignment[0] if assignment else 0
        self.cached: list[tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]] | None = None
        if precomputed is not None:  # the user's logits, aligned with X
            self.cached = [(precomputed, None, [])]
        elif cache:
            self.cached = [self._run(t, X) for t in teachers]
            if need_maps and sum(m.numel() for c in self.cached for m in c[2]) > CACHE_LIMIT:
                self.cached = None

    def _run(self, teacher: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        chunks = []
        with (
            torch.no_grad()
        ):  # in chunks: a big transfer set through a wide teacher must not hold every activation at once
            for start in range(0, len(x), 8192):
                part = x[start : start + 8192]
                chunks.append(split_outputs(teacher(self.to_teacher(part) if self.to_teacher else part)))
        logits = torch.cat([c[0] for c in chunks])
        # one net gives every chunk: all have features or none has
        feat = torch.cat([c[1] for c in chunks if c[1] is not None]) if chunks[0][1] is not None else None
        maps = [torch.cat([c[2][k] for c in chunks]) for k in range(len(chunks[0][2]))] if self.need_maps else []
        return logits, feat, maps

    def get(self, index: torch.Tensor, x_in: torch.Tensor, student_logits: torch.Tensor) -> TargetBatch:
        if self.cached is not None:
            if self.single:  # the common case, kept to three gathers per step
                logits, feat, maps = self.cached[self.first]
                return TargetBatch(
                    logits[index], None if feat is None else feat[index], [m[index] for m in maps] if maps else None
                )
            parts = [self.cached[int(t)] for t in self.assignment]
            return TargetBatch(
                torch.stack([p[0][i] for p, i in zip(parts, index, strict=True)]),
                # the teachers are nets of one kind: all have features or none has
                torch.stack([p[1][i] for p, i in zip(parts, index, strict=True) if p[1] is not None])
                if parts[0][1] is not None
                else None,
                [torch.stack([p[2][k][i] for p, i in zip(parts, index, strict=True)]) for k in range(len(parts[0][2]))]
                or None,
            )
        # inputs are augmented (or maps too big to keep): run the teacher on every member's batch
        if self.single:  # one call on all members' rows at once
            M, B = x_in.shape[0], x_in.shape[1]
            logits, feat, maps = self._run(self.teachers[self.first], x_in.flatten(0, 1))
            return TargetBatch(
                logits.view(M, B, -1),
                None if feat is None else feat.view(M, B, -1),
                [m.view(M, B, *m.shape[1:]) for m in maps] if maps else None,
            )
        outs = []
        for i, t in enumerate(self.assignment.tolist()):
            outs.append(self._run(self.teachers[t], x_in[i]))
        return TargetBatch(
            torch.stack([o[0] for o in outs]),
            torch.stack([o[1] for o in outs if o[1] is not None]) if outs[0][1] is not None else None,
            [torch.stack([o[2][k] for o in outs]) for k in range(len(outs[0][2]))] or None,
        )


class PeerTargets:
    """Deep mutual learning (Zhang et al. 2018): each peer's target is the mean probability of the other peers of
    its group on the same batch (detached); members outside a group get their own output (a zero KL term)."""

    def __init__(self, groups: Sequence[int | None]) -> None:
        M = len(groups)
        A = torch.zeros(M, M)
        for i, g in enumerate(groups):
            others = [j for j, h in enumerate(groups) if g is not None and h == g and j != i]
            for j in others:
                A[i, j] = 1.0 / len(others)
            if not others:
                A[i, i] = 1.0
        self.A = A

    def get(self, index: torch.Tensor, x_in: torch.Tensor, student_logits: torch.Tensor) -> TargetBatch:
        probs = torch.einsum("ij,jbc->ibc", self.A, F.softmax(student_logits, dim=-1))
        return TargetBatch(torch.log(probs.clamp_min(1e-12)))
