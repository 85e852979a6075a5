"""Both sides train on equal terms (skill/distill/equal_terms.py). Found from outside: a scratch stack whose slowest
learning rate trained for 76 epochs took the time the distilled students needed; the budget stopped them at epoch 31
and the report still said "no_gain: keep the scratch student" against a 100%-accurate teacher."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from skill.distill import run_quick_distill
from skill.distill.config import DistillConfig
from skill.distill.equal_terms import cut_short, ended_by_share, learner_epoch_cap, share_clock
from skill.distill.train import Clock, Result, Stopped
from skill.distill.verdict import advice, compare


def _result(epochs: int, stopped: str | None = None, planned: int = 120) -> Result:
    return Result(torch.nn.Linear(1, 1), 0.5, epochs, epochs * 10, stopped, planned_epochs=planned)


def test_each_stack_gets_its_cost_share_of_the_time_left_within_the_run_deadline():
    def deadline(run: Clock, left: float, costs: list[float]) -> tuple[float, float, float]:
        before = time.monotonic()
        clock = share_clock(run, left, costs)
        return before, clock.deadline, time.monotonic()

    run = Clock(deadline=time.monotonic() + 1000)
    before, at, after = deadline(run, 100.0, [1.0, 3.0])  # scratch costs a quarter of the steps still to train
    assert before + 25.0 <= at <= after + 25.0
    before, at, after = deadline(run, 100.0, [2.0])  # the last stack gets everything left
    assert before + 100.0 <= at <= after + 100.0
    soon = Clock(deadline=time.monotonic() + 5)
    assert deadline(soon, 100.0, [1.0, 1.0])[1] == soon.deadline  # never past the run's own deadline
    before, at, after = deadline(run, -3.0, [1.0, 1.0])  # no time left: no share
    assert before <= at <= after


def test_a_share_stop_ends_only_that_side_and_caps_the_learners_at_the_epochs_it_reached():
    spent = share_clock(Clock(deadline=time.monotonic() + 100), 100.0, [1e-9, 1.0])  # a share of about nothing
    time.sleep(0.01)
    with pytest.raises(Stopped) as err:
        spent.check()
    assert err.value.reason == "budget_share"
    # the run's own clock still decides first: its deadline and a cancel stop the run, not just the side
    over = share_clock(Clock(deadline=time.monotonic() - 1), 100.0, [1.0, 1.0])
    with pytest.raises(Stopped) as err:
        over.check()
    assert err.value.reason == "time_budget"
    cancelled = share_clock(Clock(deadline=time.monotonic() + 100, stop=lambda: True), 100.0, [1.0, 1.0])
    with pytest.raises(Stopped) as err:
        cancelled.check()
    assert err.value.reason == "cancelled"
    stopped = [_result(40, "budget_share"), _result(12)]
    assert ended_by_share(stopped) and stopped[0].stopped_by == "budget_share" and stopped[1].stopped_by == "early_stopping"
    assert learner_epoch_cap(stopped, 120) == 40
    assert learner_epoch_cap([_result(30), _result(120)], 120) == 120  # early stopping and the cap: no share stop
    assert not ended_by_share([_result(0, "budget_share")])  # not one epoch: no comparison can come of it
    assert not ended_by_share([_result(40, "time_budget")])


def test_learners_the_budget_stopped_short_of_the_scratch_epochs_make_the_comparison_unequal():
    scratch = [_result(76), _result(40), _result(33)]
    short = cut_short(scratch, [[_result(31, "time_budget")] * 3], 1, learner_s=62.0, budget_s=150, safety=1.25)
    assert short is not None and (short.learner_epochs, short.scratch_epochs) == (31, 76)
    assert short.suggested_budget_s == int(np.ceil(150 + 45 * 2.0 * 1.25))  # the missing epochs at the learners' pace
    assert "raise time_budget_s to about 263 s" in short.sentence()
    # born-again generations: the cut one's missing epochs and those of generations never started, at the pace of
    # every learner epoch trained (generation 1's 76 and generation 2's 4 in 80 s)
    gens = cut_short(scratch, [[_result(76)], [_result(4, "time_budget")]], 3, 80.0, 150, 1.0, "born-again generations")
    assert gens is not None and gens.learner_epochs == 4 and gens.suggested_budget_s == 150 + (72 + 76) * 1
    assert "stopped the born-again generations after 4 epoch(s) (1 more never started)" in gens.sentence()
    # scratch held to its share: a larger budget grows that share too, so no number is promised
    held = cut_short([_result(50, "budget_share")], [[_result(20, "time_budget")]], 1, 30.0, 60, 1.25)
    assert held is not None and held.suggested_budget_s is None and "rerun (the plan measures again)" in held.sentence()
    # learners that finished (early stopping or their cap), or that the budget stopped at or past scratch's epochs: equal
    assert cut_short(scratch, [[_result(20), _result(50)]], 1, 60.0, 150, 1.25) is None
    assert cut_short(scratch, [[_result(76, "time_budget")]], 1, 60.0, 150, 1.25) is None
    assert cut_short([], [[_result(3, "time_budget")]], 1, 6.0, 150, 1.25) is None


def test_an_unequal_comparison_is_inconclusive_even_with_a_strong_teacher_and_a_clear_gap():
    rng = np.random.default_rng(0)
    n = 400
    scratch = (rng.random((3, n)) < 0.80).astype(float)
    distilled = np.maximum(scratch, (rng.random((3, n)) < 0.5).astype(float))  # far better on every seed
    teacher = np.ones(n)
    fair = compare([0, 1, 2], scratch, distilled, teacher)
    assert fair.verdict == "gain" and fair.inconclusive_reason is None
    why = "the time budget stopped the distilled students after 31 epoch(s), while the scratch students trained up to 76"
    unequal = compare([0, 1, 2], scratch, distilled, teacher, cut_short=why)
    assert unequal.verdict == "inconclusive" and unequal.inconclusive_reason == "unequal_training"
    assert why in unequal.statement and unequal.interval == fair.interval  # what was measured is still shown
    words, keep = advice(unequal, "time_budget", [])
    assert "cut the distilled students short" in words and "better teacher" not in words
    assert keep == "distilled"  # the side the budget handicapped is ahead anyway: it is saved, and said to prove nothing
    behind = compare([0, 1, 2], distilled, scratch, teacher, cut_short=why)  # the other way round
    assert advice(behind, "time_budget", [])[1] == "scratch"
    # a teacher no better than scratch stays the first reason: distillation was not tested at all
    weak = compare([0, 1, 2], scratch, distilled, scratch[0], cut_short=why)
    assert weak.inconclusive_reason == "teacher_no_better"


def _stages_until_students(cfg: DistillConfig):
    from skill.distill import stages

    ctx = stages.Context(cfg, Clock(deadline=1e12), stages.Progress(None), torch.device("cpu"), "test")
    data = stages.load(ctx)
    nets = stages.architecture(ctx, data)
    choice = stages.method(ctx, data, nets)
    plan = stages.plan(ctx, data, nets, choice)
    return ctx, data, nets, choice, plan, stages.teachers(ctx, data, nets, plan)


def test_learners_the_budget_cuts_short_get_no_verdict_through_the_real_stages(tmp_path):
    """A counted budget (no wall clock): 20 scratch epochs, then the budget ends after 3 learner epochs."""
    from skill.distill import stages
    from skill.distill.runner import evaluate
    from tests.test_distill_experiment_design import FAST, _blobs, _CountingClock

    data_path, logits = _blobs(tmp_path, unlabelled=200)
    # five seeds: the Bayes-rule teacher then beats 40-label scratch students beyond noise, so the budget's cut is
    # what the verdict turns on
    cfg = DistillConfig(**{**FAST, "dataset": data_path, "teacher": logits, "student_hidden": [8], "epochs": 20,
                           "patience": 1000, "seeds": 5})
    ctx, data, nets, choice, plan, teacher = _stages_until_students(cfg)
    spe = plan.costs.steps_per_epoch
    counted = stages.Context(cfg, _CountingClock((20 + 3) * spe), ctx.progress, ctx.device, "test", wall=ctx.wall)  # type: ignore[arg-type]
    trials = stages.students(counted, data, nets, choice, plan, teacher)
    assert trials.stop_reason == "time_budget" and trials.cut_short is not None
    assert (trials.cut_short.learner_epochs, trials.cut_short.scratch_epochs) == (3, 20)
    assert trials.cut_short.suggested_budget_s is not None and trials.cut_short.suggested_budget_s > cfg.time_budget_s
    report = evaluate(counted, data, nets, choice, plan, teacher, trials)
    c = report.comparison
    assert c is not None and c.verdict == "inconclusive" and c.inconclusive_reason == "unequal_training", c.statement
    assert "after 3 epoch(s), while the scratch students trained up to 20" in c.statement
    assert "cut the distilled students short" in report.verdict and not report.complete
    assert {t.stopped_by for t in report.trials if t.role == "distilled"} == {"time_budget"}


def test_born_again_generations_cut_by_the_budget_are_an_unequal_comparison(tmp_path):
    from skill.distill import stages
    from tests.test_distill_experiment_design import FAST

    cfg = DistillConfig(**{**FAST, "topology": "self", "generations": 2, "epochs": 6, "patience": 1000, "seeds": 3})
    ctx, data, nets, choice, plan, teacher = _stages_until_students(cfg)
    spe = plan.costs.steps_per_epoch
    # 6 scratch epochs, generation 1's 6, then 2 of generation 2's before the counted budget ends
    from tests.test_distill_experiment_design import _CountingClock

    counted = stages.Context(cfg, _CountingClock((6 + 6 + 2) * spe), ctx.progress, ctx.device, "test", wall=ctx.wall)  # type: ignore[arg-type]
    trials = stages.students(counted, data, nets, choice, plan, teacher)
    assert trials.cut_short is not None and (trials.cut_short.learner_epochs, trials.cut_short.scratch_epochs) == (2, 6)
    assert trials.stop_reason == "time_budget"


def test_a_scratch_stack_that_would_take_the_whole_budget_leaves_the_learners_as_many_epochs(tmp_path):
    # no early stopping (patience 1000), 2,000 epochs of 144 steps (batch 8) and no fitting to the budget: no machine
    # trains that in 14 s, and before, the scratch students trained until the budget ended while the distilled
    # students never started
    report = run_quick_distill(
        DistillConfig(
            epochs=2000,
            teacher_epochs=5,
            teacher_hidden=[64],
            patience=1000,
            batch_size=8,
            time_budget_s=14,
            fit_to_budget=False,
            temperature=4,
            kd_loss_weight=0.9,
            seeds=3,
            save_artifacts=False,
            threads=1,
        )
    )
    scratch = [t for t in report.trials if t.role == "scratch"]
    learners = [t.epochs for t in report.trials if t.role == "distilled"]
    cap = max(t.epochs for t in scratch)
    assert 0 < cap < 2000 and {t.stopped_by for t in scratch} == {"budget_share"}, [(t.epochs, t.stopped_by) for t in scratch]
    assert learners and max(learners) <= cap, (cap, learners)
    assert any(f"the learners train at most {cap} epochs too" in note for note in report.plan.replanned)
    assert not report.complete  # both sides were held short of the plan: never reported as a complete run
    c = report.comparison
    assert c is not None
    if min(learners) < cap:  # the budget still cut them: no verdict drawn from it
        assert report.settings.stop_reason == "time_budget" and c.verdict == "inconclusive"
    else:
        assert report.settings.stop_reason == "budget_share" and "SHORTENED (budget_share)" in report.summary
        assert c.inconclusive_reason != "unequal_training"


def test_a_member_that_early_stopped_before_its_stack_was_stopped_says_early_stopping():
    # found in review: every member carried its stack's stop, so students done at epoch 55 read "budget_share"
    done = Result(torch.nn.Linear(1, 1), 0.5, 55, 550, "budget_share", planned_epochs=2000, done_early=True)
    cut = Result(torch.nn.Linear(1, 1), 0.5, 73, 730, "budget_share", planned_epochs=2000)
    assert done.stopped_by == "early_stopping" and cut.stopped_by == "budget_share"


def test_the_restore_and_the_plan_price_the_learners_as_the_share_does():
    from skill.distill.plan import Costs, Shape, restorable_trials

    # found in review: the restore priced the learners at scratch's pace, started a stack the share then could not
    # fund, and dropped it
    def stack_s(members: int) -> float:
        return 10.0 * members

    assert restorable_trials(1, 3, 1, 55.0, stack_s) == 3  # 20 + 30 s fit 55 s at scratch's pace
    assert restorable_trials(1, 3, 1, 55.0, stack_s, learner_weight=2.5) == 1  # two trials: 10 + 2.5 x 20 s do not
    costs = Costs(steps_per_epoch=10, fixed_s=0.0, per_member_s=0.01, stacks=lambda t, s: [t * s, s], safety=1.0)
    slow = Costs(steps_per_epoch=10, fixed_s=0.0, per_member_s=0.01, stacks=lambda t, s: [t * s, s], safety=1.0,
                 learner_factor=3.0)
    shape = Shape(3, 2, 5)
    assert costs.students_s(shape) == pytest.approx(5 * 10 * (0.06 + 0.02))
    assert slow.students_s(shape) == pytest.approx(5 * 10 * (0.06 + 3 * 0.02))
