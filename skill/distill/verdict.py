"""From paired test predictions to a comparison with its interval, and from that to what to do, in words."""

from __future__ import annotations

import numpy as np

from skill.distill import stats
from skill.distill.report import Comparison, SeedPair


def _fmt(i: stats.Interval) -> str:
    return f"{i.low:+.2f} to {i.high:+.2f}"


def compare(seeds: list[int], scratch_correct: np.ndarray, distilled_correct: np.ndarray) -> Comparison:
    """scratch_correct, distilled_correct: [seeds, test rows] of 0/1; row 0 is the saved seed's pair."""
    gains = list((distilled_correct.mean(1) - scratch_correct.mean(1)) * 100)
    mean = float(np.mean(gains))
    by_seed = stats.seed_interval(gains)
    by_test = stats.bootstrap_interval(scratch_correct, distilled_correct)
    both = stats.combined_interval(mean, by_seed, by_test)
    n = len(seeds)
    if n < 2:
        verdict = "no_verdict"
        statement = (f"One seed: {mean:+.2f} points, test-set 95% interval {_fmt(by_test)}; seed-to-seed noise is unmeasured, "
                     "so no verdict: run seeds >= 3")
    else:
        verdict = "gain" if both.low > 0 else "loss" if both.high < 0 else "no_gain"
        noun = {"gain": "a gain", "loss": "a loss", "no_gain": "no demonstrated change (the interval includes 0)"}[verdict]
        statement = (f"Distillation changes accuracy by {mean:+.2f} points over {n} paired seeds, 95% interval {_fmt(both)} "
                     f"(seeds {_fmt(by_seed)}, test rows {_fmt(by_test)}): {noun}")  # type: ignore[arg-type]
    return Comparison(
        pairs=[SeedPair(seed=s, scratch_accuracy=float(a.mean()), distilled_accuracy=float(b.mean()), gain_points=float(g))
               for s, a, b, g in zip(seeds, scratch_correct, distilled_correct, gains)],
        mean_gain_points=mean, std_gain_points=float(np.std(gains, ddof=1)) if n > 1 else None,
        seed_interval=[by_seed.low, by_seed.high] if by_seed else None, test_interval=[by_test.low, by_test.high],
        interval=[both.low, both.high], mcnemar_p=stats.mcnemar_p(scratch_correct[0], distilled_correct[0]), verdict=verdict, statement=statement)


def teacher_not_better(teacher_correct: np.ndarray, scratch_correct: np.ndarray) -> str | None:
    """The words when the teacher does not beat a scratch student beyond test-set noise, else None."""
    interval = stats.bootstrap_interval(scratch_correct, np.broadcast_to(teacher_correct, scratch_correct.shape))
    if interval.low > 0:
        return None
    t, s = float(teacher_correct.mean()), float(scratch_correct.mean())
    return (f"the teacher is no better than a student trained from scratch ({t:.4f} vs {s:.4f}, difference interval {_fmt(interval)} points): "
            "improve the teacher first (more epochs, a wider net, more data)")


def advice(comparison: Comparison | None, teacher_flag: str | None, stop_reason: str) -> tuple[str, str]:
    """(what to do in words, which student to save: 'distilled' or 'scratch')."""
    parts, keep = [], "distilled"
    if teacher_flag:
        parts.append(teacher_flag)
    if comparison is None:
        parts.append("no comparison: the run stopped before both students finished an epoch")
    elif comparison.verdict == "gain":
        parts.append("distillation helped: keep the distilled student")
    elif comparison.verdict == "loss":
        parts.append("distillation hurt here: keep the scratch student (check the teacher, T and the epochs)")
        keep = "scratch"
    elif comparison.verdict == "no_gain":
        parts.append("distillation did not help here: keep the scratch student")
        keep = "scratch"
    else:
        parts.append("no verdict from one seed: run seeds >= 3 before choosing (the distilled student is saved meanwhile)")
    if stop_reason != "finished":
        parts.append(f"INCOMPLETE ({stop_reason}): the numbers come from a shortened run")
    return "; ".join(parts), keep
