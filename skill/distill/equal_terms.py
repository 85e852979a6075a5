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
    """The learners' epoch cap from the scratch search's stack: the planned cap, or the most epochs a scratch student
    reached when its share of the time ended the stack (the learners then get no more epochs than scratch had)."""
    if ended_by_share(scratch):
        return max(r.epochs_run for r in scratch)
    return cap


class CutShort(NamedTuple):
    """The budget stopped the learners before they reached the epochs the scratch students trained."""

    learner_epochs: int
    scratch_epochs: int
    suggested_budget_s: int | None  # None when scratch itself was held to its share: no budget is known to fit
    learners: str = "distilled students"  # or "online peers", "born-again generations"
    not_started: int = 0  # learner stacks (generations) the budget never reached

    def sentence(self) -> str:
        never = f" ({self.not_started} more never started)" if self.not_started else ""
        said = (
            f"the time budget stopped the {self.learners} after {self.learner_epochs} epoch(s){never}, while the "
            f"scratch students trained up to {self.scratch_epochs}, so the two sides did not train alike"
        )
        if self.suggested_budget_s is not None:
            budget = self.suggested_budget_s
            return f"{said}; raise time_budget_s to about {budget} s so the {self.learners} can train as long"
        return (
            f"{said}; they cost more a step than the plan measured before training, so a larger budget gives both "
            "sides more epochs without closing the gap: rerun (the plan measures again), or give a budget in which "
            "the scratch students stop by early stopping before their share ends"
        )


def cut_short(
    scratch: list[Result],
    learner_stacks: list[list[Result]],
    planned_stacks: int,
    learner_s: float,
    budget_s: float,
    safety: float,
    learners: str = "distilled students",
) -> CutShort | None:
    """Whether the budget cut the learners (their stacks in training order; born-again generations are several)
    short of the scratch students' epochs. The budget that lets them finish is this one plus the missing epochs (the
    cut stack's, and those of stacks never started) at the learners' measured seconds per epoch, with the plan's
    safety factor; none is given when scratch was held to its share, since any larger budget grows its share too."""
    if not scratch or not learner_stacks or not learner_stacks[-1]:
        return None
    last = learner_stacks[-1]
    if last[0].stopped != "time_budget":
        return None
    reached, wanted = max(r.epochs_run for r in last), max(r.epochs_run for r in scratch)
    if reached >= wanted:
        return None
    not_started = max(0, planned_stacks - len(learner_stacks))
    if ended_by_share(scratch):
        return CutShort(reached, wanted, None, learners, not_started)
    trained = sum(max(r.epochs_run for r in stack) for stack in learner_stacks)
    missing = wanted - reached + wanted * not_started
    per_epoch = learner_s / max(trained, 1)
    return CutShort(reached, wanted, math.ceil(budget_s + missing * per_epoch * safety), learners, not_started)
