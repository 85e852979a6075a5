"""Both sides of the comparison train on equal terms. The stacks train one after another (scratch first, the
learners last), so a slow scratch stack could take the time the learners need and leave them cut short, which biases
every verdict against distillation. Three rules prevent it: each scratch stack gets a share of the time left in
proportion to its step cost (the learners' stacks get the rest); a scratch stack that ran out of its share caps the
learners at the epochs it reached; and a learner stack the budget still cut short of the scratch students' epochs
makes the comparison unequal, so no verdict is drawn from it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

from skill.distill.train import Clock, Result, Stopped


@dataclass
class ShareClock(Clock):
    """A stack's share of the time: the run's own clock (its deadline, a cancel) stops it as before; its own earlier
    deadline stops only this stack, as `budget_share`."""

    outer: Clock | None = None

    def check(self) -> None:
        if self.outer is not None:
            self.outer.check()
        if time.monotonic() > self.deadline:
            raise Stopped("budget_share")


def share_clock(clock: Clock, left_s: float, stack_step_s: list[float]) -> ShareClock:
    """The clock of the first of the stacks still to train (`stack_step_s`: seconds per step of each, this one
    first): its share of `left_s` in proportion to its cost, within the run's own clock."""
    share = max(0.0, left_s) * stack_step_s[0] / sum(stack_step_s)
    return ShareClock(deadline=min(clock.deadline, time.monotonic() + share), stop=clock.stop, outer=clock)


def ended_by_share(results: list[Result]) -> bool:
    """The stack's share of the time ended it after at least one epoch: its side ends there and the run goes on
    (with no epoch finished, the budget is too small for any comparison)."""
    return bool(results) and results[0].stopped == "budget_share" and max(r.epochs_run for r in results) > 0


def learner_epoch_cap(scratch: list[Result], cap: int) -> int:
    """The learners' epoch cap: the planned cap, or the most epochs a scratch student reached when its share of the
    time ended its stack (the learners then get no more epochs than scratch had)."""
    if any(r.stopped == "budget_share" for r in scratch):
        return max(r.epochs_run for r in scratch)
    return cap


class CutShort(NamedTuple):
    """The budget stopped the learners before they reached the epochs the scratch students trained."""

    learner_epochs: int
    scratch_epochs: int
    suggested_budget_s: int

    def sentence(self) -> str:
        return (
            f"the time budget stopped the distilled students after {self.learner_epochs} epoch(s), while the scratch "
            f"students trained up to {self.scratch_epochs}, so the two sides did not train alike; raise "
            f"time_budget_s to about {self.suggested_budget_s} s so the distilled students can train as long"
        )


def cut_short(
    scratch: list[Result], learners: list[Result], learner_s: float, budget_s: float, safety: float
) -> CutShort | None:
    """Whether the budget cut the learners short of the scratch students' epochs, with the budget that would let them
    finish: this one plus the missing epochs at the learners' measured pace, with the plan's safety factor."""
    cut = [r for r in learners if r.stopped == "time_budget"]
    if not cut or not scratch:
        return None
    reached, wanted = max(r.epochs_run for r in cut), max(r.epochs_run for r in scratch)
    if reached >= wanted:
        return None
    per_epoch = learner_s / max(reached, 1)
    return CutShort(reached, wanted, math.ceil(budget_s + (wanted - reached) * per_epoch * safety))
