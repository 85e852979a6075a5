"""How many torch threads a run uses, chosen from the work per step, set for the run and restored after it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# Below this many multiply-adds per training step, one thread is fastest: the stacked nets of a quick distill are
# so small that waking a second thread costs more than it saves, and one thread never oversubscribes a busy machine
# (measured: bench/quick_distill.py, "threads" table).
ONE_THREAD_BELOW = 50_000_000
MAX_AUTO_THREADS = 4


def free_cores() -> int:
    """Cores this process may use minus the ones other processes keep busy (1-minute load average), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - int(round(os.getloadavg()[0])))


def choose_threads(requested: int | None, macs_per_step: float) -> tuple[int, str]:
    if requested:
        return requested, "fixed by the caller"
    if macs_per_step < ONE_THREAD_BELOW:
        return (
            1,
            f"{macs_per_step / 1e6:.1f} M multiply-adds per step: one thread is fastest at this size and never "
            "oversubscribes",
        )
    n = min(MAX_AUTO_THREADS, free_cores())
    return n, f"{macs_per_step / 1e6:.0f} M multiply-adds per step: {n} thread(s), the cores not busy with other work"


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Set torch's intra-op threads for one run and put the caller's setting back afterwards (never leaked)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
