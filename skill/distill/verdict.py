"""From paired test predictions to a comparison with its interval, and from that to what to do, in words."""

from __future__ import annotations

import numpy as np

from skill.distill import stats
from skill.distill.report import Comparison, SeedPair
from skill.rules import get_rules


def _fmt(i: stats.Interval) -> str:
    return f"{i.low:+.2f} to {i.high:+.2f}"


def _paired(seeds: int, a_correct: np.ndarray, b_correct: np.ndarray) -> tuple[float, stats.Interval | None, stats.Interval, stats.Interval, list[float]]:
    """Mean of b - a in points over seeds, with its seed, test-row and combined intervals."""
    gains = list((b_correct.mean(1) - a_correct.mean(1)) * 100)
    mean = float(np.mean(gains))
    by_seed = stats.seed_interval(gains)
    by_test = stats.bootstrap_interval(a_correct, b_correct)
    return mean, by_seed, by_test, stats.combined_interval(mean, by_seed, by_test), gains


def inconclusive_advice(teacher_converged: bool = False) -> str:
    """What to change when the teacher is no better than scratch (runner rules): more time only helps a teacher that
    had not converged."""
    return "; ".join(get_rules().runner["verdict"]["inconclusive_advice"]["converged" if teacher_converged else "not_converged"])


def compare(seeds: list[int], scratch_correct: np.ndarray, distilled_correct: np.ndarray, teacher_correct: np.ndarray | None = None,
            teacher_converged: bool = False) -> Comparison:
    """scratch_correct, distilled_correct: [seeds, test rows] of 0/1; row 0 is the saved seed's pair. teacher_correct:
    [test rows] of 0/1 for a teacher (None for online and self): a verdict about distillation needs a teacher that
    beats the scratch student beyond noise, else it is inconclusive."""
    mean, by_seed, by_test, both, gains = _paired(len(seeds), scratch_correct, distilled_correct)
    n = len(seeds)
    teacher_interval, teacher_better = None, None
    if teacher_correct is not None:
        t_mean, _, _, t_both, _ = _paired(n, scratch_correct, np.broadcast_to(teacher_correct, scratch_correct.shape))
        margin = float(get_rules().runner["verdict"]["teacher_margin_points"])
        teacher_interval, teacher_better = [t_both.low, t_both.high], t_both.low > margin
    observed = (f"distilled minus scratch {mean:+.2f} points over {n} paired seed(s), 95% interval {_fmt(both)}"
                + (f" (seeds {_fmt(by_seed)}, test rows {_fmt(by_test)})" if by_seed else f" (test rows {_fmt(by_test)})"))
    if teacher_better is False:
        verdict = "inconclusive"
        statement = (f"Inconclusive: the teacher is no better than a scratch student (teacher minus scratch {t_mean:+.2f} points, 95% interval "
                     f"{teacher_interval[0]:+.2f} to {teacher_interval[1]:+.2f}), so this run cannot tell whether distillation helps; "  # type: ignore[index]
                     f"{observed}. " + ("The teacher converged (early stopping on validation), so more time will not help it. " if teacher_converged
                                        else "") + f"To get an answer: {inconclusive_advice(teacher_converged)}")
    elif n < 2:
        verdict = "no_verdict"
        statement = (f"One seed: {mean:+.2f} points, test-set 95% interval {_fmt(by_test)}; seed-to-seed noise is unmeasured, "
                     "so no verdict: run seeds >= 3")
    else:
        verdict = "gain" if both.low > 0 else "loss" if both.high < 0 else "no_gain"
        noun = {"gain": "a gain", "loss": "a loss", "no_gain": "no demonstrated change (the interval includes 0)"}[verdict]
        statement = (f"Distillation changes accuracy by {mean:+.2f} points over {n} paired seeds, 95% interval {_fmt(both)} "
                     f"(seeds {_fmt(by_seed)}, test rows {_fmt(by_test)}): {noun}")  # type: ignore[arg-type]
        if teacher_better:
            statement += f" (the teacher beats scratch by {teacher_interval[0]:+.2f} to {teacher_interval[1]:+.2f} points)"  # type: ignore[index]
    return Comparison(
        pairs=[SeedPair(seed=s, scratch_accuracy=float(a.mean()), distilled_accuracy=float(b.mean()), gain_points=float(g))
               for s, a, b, g in zip(seeds, scratch_correct, distilled_correct, gains)],
        mean_gain_points=mean, std_gain_points=float(np.std(gains, ddof=1)) if n > 1 else None,
        seed_interval=[by_seed.low, by_seed.high] if by_seed else None, test_interval=[by_test.low, by_test.high],
        interval=[both.low, both.high], mcnemar_p=stats.mcnemar_p(scratch_correct[0], distilled_correct[0]), verdict=verdict, statement=statement,
        teacher_interval=teacher_interval, teacher_better=teacher_better)


def advice(comparison: Comparison | None, stop_reason: str, ties: list[str]) -> tuple[str, str]:
    """(what to do in words, which student to save: 'distilled' or 'scratch')."""
    parts, keep = [], "distilled"
    if comparison is None:
        parts.append("no comparison: the run stopped before both students finished an epoch")
    elif comparison.verdict == "inconclusive":
        parts.append("inconclusive: the teacher is no better than a scratch student, so distillation was not tested; keep the scratch student "
                     "and get a better teacher first (what to change is in the comparison)")
        keep = "scratch"
    elif comparison.verdict == "gain":
        parts.append("distillation helped: keep the distilled student")
    elif comparison.verdict == "loss":
        parts.append("distillation hurt here: keep the scratch student (check T, the loss weight and the epochs)")
        keep = "scratch"
    elif comparison.verdict == "no_gain":
        parts.append("distillation did not help here: keep the scratch student")
        keep = "scratch"
    else:
        parts.append("no verdict from one seed: run seeds >= 3 before choosing (the distilled student is saved meanwhile)")
    if ties:
        parts.append("; ".join(ties))
    if stop_reason != "finished":
        parts.append(f"INCOMPLETE ({stop_reason}): the numbers come from a shortened run")
    return "; ".join(parts), keep
