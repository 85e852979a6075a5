"""Who trains beside whom, one function per topology (mdistiller's one-file-per-method, kept to one screen each).

Each returns the members of the first student stack: scratch students over a learning-rate grid and the
distilled side over its own grid, with as many validation-selected trials per seed on each side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skill.distill.train import Member


@dataclass
class Grid:
    """The distilled side's settings per seed; the scratch side gets as many learning rates."""

    settings: list[tuple[float, float]]  # (T, kd weight) pairs
    aux_weight: float  # hint, attention or relation term weight (0 for the response method)


def scratch_learning_rates(base: float, trials: int) -> list[float]:
    """`trials` rates spaced by factors of two around the base (lr/2, lr, 2 lr for three): scratch gets its own
    validation-selected grid, so neither side is the best of more tries than the other."""
    if trials == 1:
        return [base]
    return [float(base * f) for f in 2.0 ** np.linspace(-1, 1, trials)]


def _scratch(seeds: list[int], lr: float, trials: int) -> list[Member]:
    return [Member("scratch", seed, r) for seed in seeds for r in scratch_learning_rates(lr, trials)]


def teacher_student(seeds: list[int], lr: float, grid: Grid) -> list[Member]:
    """Hinton KD (or a feature/relation variant) from a fixed teacher; the same initial weights and batch order as
    the scratch student of the same seed (paired)."""
    distilled = [Member("distilled", seed, lr, temperature=T, ce_weight=1 - w, kd_weight=w, aux_weight=grid.aux_weight)
                 for seed in seeds for T, w in grid.settings]
    return _scratch(seeds, lr, len(grid.settings)) + distilled


def online(seeds: list[int], lr: float, peers: int, temperature: float) -> tuple[list[Member], list[int | None]]:
    """Deep mutual learning (Zhang et al. 2018): every peer minimises CE + KL(mean of the others || itself) at T = 1,
    on the same batches; no teacher is trained. Peer 0 shares its seed's initial weights with the scratch student."""
    members = _scratch(seeds, lr, peers)
    groups: list[int | None] = [None] * len(members)
    for seed in seeds:
        for i in range(peers):
            members.append(Member("peer", seed + i * 7919, lr, order_seed=seed, temperature=temperature, ce_weight=1.0, kd_weight=1.0))
            groups.append(seed)
    return members, groups


def self_generation(seeds: list[int], lr: float, T: float, w: float) -> list[Member]:
    """Born-again networks (Furlanello et al. 2018): generation g learns from generation g - 1 of its own seed."""
    return [Member("generation", seed, lr, temperature=T, ce_weight=1 - w, kd_weight=w) for seed in seeds]


def self_scratch(seeds: list[int], lr: float, generations: int) -> list[Member]:
    """The first stack of the self topology: scratch students only (the best of each seed becomes generation 0)."""
    return _scratch(seeds, lr, generations)
