"""The budget plan of a quick distill, as arithmetic on measured step times (no torch here, so it is tested alone).

An experiment that cannot answer "does distillation help?" is worse than none: a teacher cut to two epochs loses
to a scratch student and the run reports a "loss" that measures the run. So the plan is teacher-first: the teacher
keeps a guaranteed share of the budget (more when the students need less) and trains until validation stops
improving; the students get the rest. When the full student experiment does not fit, the rules' cut order applies
(trials per side, then seeds down to the verdict floor, then student epochs down to where validation plateaued);
when even that does not fit, the plan says so before anything trains, with the smallest budget that would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

MAX_BUDGET_S = 600.0  # DistillConfig.time_budget_s's upper bound


class Shape(NamedTuple):
    """How much student experiment: validation-selected trials per side, paired seeds, epochs per student."""

    trials: int
    seeds: int
    epochs: int


@dataclass(frozen=True)
class Costs:
    """Measured costs: a stack of M students costs fixed_s + per_member_s * M per step (Python overhead plus work)."""

    steps_per_epoch: int
    fixed_s: float
    per_member_s: float
    stacks: Callable[[int, int], list[int]]  # (trials, seeds) -> members of each stack trained one after another
    teacher_epoch_s: float = 0.0  # 0 when no teacher trains here
    safety: float = 1.25
    # epochs a stack is expected to run before early stopping ends it (None: all shape.epochs); students stopped at
    # 35-90 of 120 epochs on a 600-label task, so an estimate at the cap was about twice too high
    expected_epochs: int | None = None
    learner_factor: float = 1.0  # the stacks after the first (learners) cost this many times a measured step

    def epochs_of(self, shape: Shape) -> int:
        """Epochs the estimate counts: the cap, or fewer when early stopping is expected to end the stacks sooner."""
        return shape.epochs if self.expected_epochs is None else min(shape.epochs, self.expected_epochs)

    def step_s(self, members: int) -> float:
        """Seconds of one step of a stack of `members` students (measured)."""
        return self.fixed_s + self.per_member_s * members

    def students_s(self, shape: Shape) -> float:
        first, *learners = self.stacks(shape.trials, shape.seeds)
        per_step = self.step_s(first) + self.learner_factor * sum(self.step_s(m) for m in learners)
        return self.epochs_of(shape) * self.steps_per_epoch * per_step * self.safety

    def teacher_s(self, epochs: int) -> float:
        return epochs * self.teacher_epoch_s * self.safety


@dataclass(frozen=True)
class StudentPlan:
    shape: Shape
    estimate_s: float
    cuts: tuple[str, ...] = ()
    plateau_epoch: int | None = None
    expected_epochs: int | None = None  # the epochs the estimate counts (None: the cap)


@dataclass(frozen=True)
class Infeasible:
    """Even the smallest experiment that can answer does not fit: the budget that would, and why."""

    needed_s: float
    smallest: Shape
    reason: str
    lower_bound: bool = False  # the probe ran out of time while validation still improved: at least this much


def seed_floor(requested: int, rule_floor: int) -> int:
    """Seeds are never cut below the verdict floor when a verdict is wanted (two or more seeds asked for)."""
    return requested if requested < 2 else min(requested, rule_floor)


ProbeResult = tuple[int, int | None] | tuple[int, int | None, bool]


@dataclass(frozen=True)
class _Probe:
    """What the students' probe found: the fewest epochs worth running, where validation plateaued, and whether its
    time ended while validation still improved (then min_epochs is a lower bound)."""

    min_epochs: int
    plateau: int | None
    lower: bool

    @classmethod
    def of(cls, result: ProbeResult) -> _Probe:
        return cls(result[0], result[1], len(result) > 2 and bool(result[2]))


class _LazyProbe:
    """Runs the probe (min_epochs) at most once, and only when a plan needs its answer: it costs training time."""

    def __init__(self, run: Callable[[], ProbeResult]) -> None:
        self._run = run
        self.result: _Probe | None = None

    def __call__(self) -> _Probe:
        if self.result is None:
            self.result = _Probe.of(self._run())
        return self.result


def _early_stopping_costs(costs: Costs, full: Shape, probe: _LazyProbe, patience: int) -> Costs:
    """The costs counting the epochs early stopping is expected to use, when the probe saw validation plateau (a
    probe still improving when its time ended says nothing about when the students stop: the cap stays)."""
    first = probe()
    if not first.lower and first.plateau is not None:
        return replace(costs, expected_epochs=expected_epochs(full.epochs, int(first.min_epochs), patience))
    return costs


def _cut_trials(shape: Shape, full: Shape, limit_s: float, costs: Costs) -> tuple[Shape, str | None]:
    """Fewer validation-selected trials per side, one at a time, until the experiment fits (never below one)."""
    for trials in range(shape.trials - 1, 0, -1):
        shape = shape._replace(trials=trials)
        if costs.students_s(shape) <= limit_s:
            break
    cut = f"trials per side {full.trials} -> {shape.trials}" if shape.trials != full.trials else None
    return shape, cut


def _cut_seeds(shape: Shape, full: Shape, limit_s: float, costs: Costs, floor: int) -> tuple[Shape, str | None]:
    """Fewer paired seeds, one at a time, until the experiment fits (never below the verdict floor)."""
    for seeds in range(shape.seeds - 1, floor - 1, -1):
        shape = shape._replace(seeds=seeds)
        if costs.students_s(shape) <= limit_s:
            break
    if shape.seeds == full.seeds:
        return shape, None
    return shape, f"seeds {full.seeds} -> {shape.seeds}" + (
        " (the floor for a verdict)" if shape.seeds == floor >= 2 else ""
    )


def _cut_epochs(
    shape: Shape, full: Shape, limit_s: float, costs: Costs, probe: _LazyProbe
) -> tuple[Shape, str | None, _Probe]:
    """Fewer student epochs, as many as fit, but never below the probe's minimum (where validation plateaued)."""
    per_epoch = costs.students_s(shape._replace(epochs=1))
    fit = int(limit_s // per_epoch) if per_epoch > 0 else full.epochs
    found = probe()
    need = min(found.min_epochs, full.epochs)
    epochs = max(need, min(fit, shape.epochs))
    cut = None
    if epochs != full.epochs:
        where = (
            f"the probe's validation was still improving at epoch {found.plateau} when its time ended"
            if found.lower
            else f"the probe's validation plateaued at epoch {found.plateau}"
            if found.plateau
            else "the smallest useful schedule"
        )
        cut = f"student epochs {full.epochs} -> {epochs} (not below {need}: {where})"
    return shape._replace(epochs=epochs), cut, found


def _infeasible(shape: Shape, costs: Costs, found: _Probe | None) -> Infeasible:
    """The smallest experiment did not fit: its cost, and what the probe said when the epochs were cut."""
    plateau, lower = (found.plateau, found.lower) if found is not None else (None, False)
    return Infeasible(
        costs.students_s(shape),
        shape,
        f"the smallest experiment that can answer ({shape.trials} trial(s) per side, {shape.seeds} seed(s), "
        f"{shape.epochs} student epochs"
        + (
            f": validation was still improving at epoch {plateau} when the probe's time ended, so this is a lower bound"
            if lower
            else f": validation plateaued at epoch {plateau} in the probe"
            if plateau
            else ""
        )
        + ")",
        lower_bound=lower,
    )


def fit_students(
    full: Shape,
    limit_s: float,
    costs: Costs,
    floor: int,
    min_epochs: Callable[[], ProbeResult],
    trials_cuttable: bool = True,
    order: tuple[str, ...] = ("trials", "seeds", "student_epochs"),
    patience: int | None = None,
) -> StudentPlan | Infeasible:
    """The largest student experiment within limit_s, cutting in `order` (the rules' cut_order): trials per side,
    seeds down to `floor`, student epochs down to min_epochs() (which may run a probe and returns (epochs, plateau
    epoch)); each cut goes only as far as needed. Infeasible when even the smallest experiment does not fit.

    patience: the students' early-stopping patience. When the experiment does not fit at the epoch cap, the probe
    runs first and the estimate counts the epochs early stopping is expected to use (the probe's minimum epochs plus
    the patience, at most the cap; the cap itself when the probe was still improving), so nothing is cut for epochs
    that will never run."""
    if costs.students_s(full) <= limit_s:
        return StudentPlan(full, costs.students_s(full))
    probe = _LazyProbe(min_epochs)
    if patience is not None:
        costs = _early_stopping_costs(costs, full, probe, patience)
        if costs.students_s(full) <= limit_s:
            return StudentPlan(full, costs.students_s(full), (), probe().plateau, costs.expected_epochs)
    cuts: list[str] = []
    shape, epochs_probe = full, None
    for step in order:
        cut = None
        if step == "trials" and trials_cuttable:
            shape, cut = _cut_trials(shape, full, limit_s, costs)
        elif step == "seeds":
            shape, cut = _cut_seeds(shape, full, limit_s, costs, floor)
        elif step == "student_epochs":
            shape, cut, epochs_probe = _cut_epochs(shape, full, limit_s, costs, probe)
        if cut is not None:
            cuts.append(cut)
        if costs.students_s(shape) <= limit_s:
            seen = probe.result.plateau if probe.result is not None else None
            return StudentPlan(shape, costs.students_s(shape), tuple(cuts), seen, costs.expected_epochs)
    return _infeasible(shape, costs, epochs_probe)


def expected_epochs(cap: int, min_epochs: int, patience: int) -> int:
    """Epochs a stack is expected to run: the probe's minimum (its plateau times the rules' factor) plus the
    patience early stopping waits, at most the cap."""
    return max(1, min(cap, min_epochs + patience))


def robust_step_s(times: list[float], warmup: int) -> float:
    """Seconds per step from a probe: the lower quartile of the steps after the warm-up. A neighbour on a shared
    machine only ever adds time, in bursts: a median of ten steps caught in a burst put a 6 s run at 98 s and cut its
    tuning; the safety factor (and the re-plan after the scratch students, from their real pace) covers the rest."""
    kept = times[warmup:] or times
    return float(np.percentile(kept, 25)) if kept else 0.0


def restorable_trials(
    current: int, full: int, seeds: int, left_s: float, stack_s: Callable[[int], float], learner_weight: float = 1.0
) -> int:
    """After the scratch students: the most trials per side (current..full) whose extra scratch students
    ((t - current) x seeds, one more stack) and distilled students (t x seeds, costing learner_weight times a scratch
    stack) fit left_s by stack_s(members), the seconds of one stack at the planned epoch cap from the scratch stack's
    measured pace. Never more than fits."""
    best = current
    for t in range(current + 1, full + 1):
        if stack_s((t - current) * seeds) + learner_weight * stack_s(t * seeds) <= left_s:
            best = t
    return best


def teacher_share(
    budget_left_s: float, teacher_need_s: float, students_full_s: float, share_min: float, budget_s: float
) -> float:
    """Seconds reserved for the teacher: never less than its guaranteed share of the budget (a step estimate can
    be off, and the time it does not use goes back to the students), more up to what it needs when the full student
    experiment leaves room."""
    return max(share_min * budget_s, min(teacher_need_s, budget_left_s - students_full_s))


def smallest_budget(spent_s: float, reserve_s: float, students_min_s: float, share_min: float) -> float:
    """The smallest time_budget_s B whose plan fits the smallest useful student experiment beside the teacher's
    guaranteed share: B - share * B >= spent + reserve + students; rounded up to 5 s."""
    return float(math.ceil((spent_s + reserve_s + students_min_s) / (1 - share_min) / 5.0) * 5)


def plateau_epoch(curve: list[float]) -> int | None:
    """The epoch (1-based) where validation accuracy stopped improving: its first best. (A tolerance of a few
    validation rows put the plateau at epoch 1 on a 45-row split: noise, not a plateau.) None for no curve."""
    if not curve:
        return None
    return int(np.argmax(curve)) + 1


@dataclass(frozen=True)
class BudgetRules:
    """The runner rules' budget section, typed."""

    teacher_share_min: float
    teacher_patience: int
    safety_factor: float
    evaluate_reserve_s: float
    seed_floor_for_verdict: int
    plateau_epoch_factor: float
    probe_max_epochs: int
    probe_share_max: float
    probe_min_s: float
    cut_order: tuple[str, ...] = field(default=("trials", "seeds", "student_epochs"))

    @classmethod
    def from_rules(cls, rules: Mapping[str, Any]) -> BudgetRules:
        budget = rules["budget"]
        values = {k: budget[k] for k in cls.__dataclass_fields__}
        values["cut_order"] = tuple(values["cut_order"])
        return cls(**values)

    def reserve_s(self, budget_s: float) -> float:
        """Evaluation reserve: the rule's seconds, but never more than a fifth of a small budget."""
        return min(self.evaluate_reserve_s, 0.2 * budget_s)


__all__ = [
    "BudgetRules",
    "Costs",
    "Infeasible",
    "MAX_BUDGET_S",
    "Shape",
    "StudentPlan",
    "fit_students",
    "expected_epochs",
    "plateau_epoch",
    "replace",
    "restorable_trials",
    "robust_step_s",
    "seed_floor",
    "smallest_budget",
    "teacher_share",
]
