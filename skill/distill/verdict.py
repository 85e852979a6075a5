"""From paired test predictions to a comparison with its interval, and from that to what to do, in words."""

from __future__ import annotations

import numpy as np

from skill.distill import stats
from skill.distill.report import Comparison, SeedPair
from skill.rules import get_rules


def _fmt(i: stats.Interval) -> str:
    return f"{i.low:+.2f} to {i.high:+.2f}"


def _paired(
    seeds: int, a_correct: np.ndarray, b_correct: np.ndarray
) -> tuple[float, stats.Interval | None, stats.Interval, stats.Interval, list[float]]:
    """Mean of b - a in points over seeds, with its seed, test-row and combined intervals."""
    gains = list((b_correct.mean(1) - a_correct.mean(1)) * 100)
    mean = float(np.mean(gains))
    by_seed = stats.seed_interval(gains)
    by_test = stats.bootstrap_interval(a_correct, b_correct)
    return mean, by_seed, by_test, stats.combined_interval(mean, by_seed, by_test), gains


def inconclusive_advice(teacher_converged: bool = False, teacher_given: bool = False) -> str:
    """What to change when the teacher is no better than scratch (runner rules): a teacher the user gave is changed
    only by the user (no budget or width here trains it); more time only helps a teacher trained here that had not
    converged."""
    key = "given" if teacher_given else "converged" if teacher_converged else "not_converged"
    return "; ".join(get_rules().runner["verdict"]["inconclusive_advice"][key])


def verdict_seed_floor() -> int:
    """Paired seeds a verdict needs (runner rules: budget.seed_floor_for_verdict)."""
    return int(get_rules().runner["budget"]["seed_floor_for_verdict"])


def compare(
    seeds: list[int],
    scratch_correct: np.ndarray,
    distilled_correct: np.ndarray,
    teacher_correct: np.ndarray | None = None,
    teacher_converged: bool = False,
    teacher_given: bool = False,
    cut_short: str | None = None,
) -> Comparison:
    """scratch_correct, distilled_correct: [seeds, test rows] of 0/1; row 0 is the saved seed's pair. teacher_correct:
    [test rows] of 0/1 for a teacher (None for online and self): a verdict about distillation needs a teacher that
    beats the scratch student beyond noise, else it is inconclusive. A gain or loss also needs seed_floor_for_verdict
    paired seeds and the rows on which the sides differ to survive the exact test (stats.rows_sign_test). cut_short:
    why the budget stopped the learners short of the scratch students' epochs (equal_terms.CutShort), which makes
    the comparison unequal and the verdict inconclusive."""
    mean, by_seed, by_test, both, gains = _paired(len(seeds), scratch_correct, distilled_correct)
    n = len(seeds)
    floor = verdict_seed_floor()
    rows = stats.rows_sign_test(scratch_correct, distilled_correct)
    alpha = float(get_rules().runner["verdict"]["rows_test_alpha"])
    teacher_interval: list[float] | None = None
    teacher_better: bool | None = None
    if teacher_correct is not None:
        t_mean, _, _, t_both, _ = _paired(n, scratch_correct, np.broadcast_to(teacher_correct, scratch_correct.shape))
        margin = float(get_rules().runner["verdict"]["teacher_margin_points"])
        teacher_interval, teacher_better = [t_both.low, t_both.high], t_both.low > margin
    observed = f"distilled minus scratch {mean:+.2f} points over {n} paired seed(s), 95% interval {_fmt(both)}" + (
        f" (seeds {_fmt(by_seed)}, test rows {_fmt(by_test)})" if by_seed else f" (test rows {_fmt(by_test)})"
    )
    reason = None
    if teacher_interval is not None and teacher_better is False:
        verdict, reason = "inconclusive", "teacher_no_better"
        converged_words = (
            "The teacher converged (early stopping on validation), so more time will not help it. "
            if teacher_converged and not teacher_given
            else ""
        )
        statement = (
            f"Inconclusive: the teacher is no better than a scratch student (teacher minus scratch {t_mean:+.2f} "
            f"points, 95% interval {teacher_interval[0]:+.2f} to {teacher_interval[1]:+.2f}), so this run cannot tell "
            f"whether distillation helps; {observed}. "
            + converged_words
            + f"To get an answer: {inconclusive_advice(teacher_converged, teacher_given)}"
            + (f". The budget also cut the learners short: {cut_short}" if cut_short else "")
        )
    elif cut_short is not None:
        verdict, reason = "inconclusive", "unequal_training"
        statement = f"Inconclusive: {cut_short}. What was measured: {observed}"
    elif n < floor:
        verdict = "no_verdict"
        what = "seed-to-seed noise is unmeasured" if n < 2 else f"{n} seeds measure seed-to-seed noise too poorly"
        statement = (
            f"{n} paired seed(s): {observed}; {what}, and a verdict needs {floor} paired seeds (the runner rules' "
            f"seed_floor_for_verdict), so no verdict: run seeds >= {floor}"
        )
    else:
        verdict = "gain" if both.low > 0 else "loss" if both.high < 0 else "no_gain"
        exact = (
            f"exact McNemar test on the {rows.discordant} test rows where the sides differ ({rows.favour_b} favour "
            f"distilled, {rows.favour_a} scratch): p = {rows.p:.3g}"
        )
        if verdict != "no_gain" and not (rows.p < alpha and (rows.favour_b > rows.favour_a) == (verdict == "gain")):
            verdict = "no_gain"
            noun = (
                f"no demonstrated change: the interval excludes 0, but the {exact} is not below {alpha:g}, so too few "
                "rows differ to tell"
            )
        else:
            noun = {"gain": "a gain", "loss": "a loss", "no_gain": "no demonstrated change (the interval includes 0)"}[
                verdict
            ]
            if verdict != "no_gain":
                noun += f" ({exact})"
        # by_seed is None only for a single seed, which a seed floor of two or more never lets through
        seed_words = f"seeds {_fmt(by_seed)}, " if by_seed else ""
        statement = (
            f"Distillation changes accuracy by {mean:+.2f} points over {n} paired seeds, 95% interval {_fmt(both)} "
            f"({seed_words}test rows {_fmt(by_test)}): {noun}"
        )
        if teacher_interval is not None and teacher_better:
            statement += (
                f" (the teacher beats scratch by {teacher_interval[0]:+.2f} to {teacher_interval[1]:+.2f} points)"
            )
    return Comparison(
        pairs=[
            SeedPair(seed=s, scratch_accuracy=float(a.mean()), distilled_accuracy=float(b.mean()), gain_points=float(g))
            for s, a, b, g in zip(seeds, scratch_correct, distilled_correct, gains, strict=True)
        ],
        mean_gain_points=mean,
        std_gain_points=float(np.std(gains, ddof=1)) if n > 1 else None,
        seed_interval=[by_seed.low, by_seed.high] if by_seed else None,
        test_interval=[by_test.low, by_test.high],
        interval=[both.low, both.high],
        mcnemar_p=stats.mcnemar_p(scratch_correct[0], distilled_correct[0]),
        verdict=verdict,
        inconclusive_reason=reason,
        statement=statement,
        teacher_interval=teacher_interval,
        teacher_better=teacher_better,
        rows_test_p=rows.p,
        rows_favour_distilled=rows.favour_b,
        rows_favour_scratch=rows.favour_a,
        scratch_mean_accuracy=float(np.mean(scratch_correct)),
        distilled_mean_accuracy=float(np.mean(distilled_correct)),
    )


def advice(
    comparison: Comparison | None, stop_reason: str, ties: list[str], trained: dict[str, int] | None = None
) -> tuple[str, str]:
    """(what to do in words, which student to save: 'distilled' or 'scratch'). trained: the most epochs any student of
    each side (scratch, or the learners) finished, so a stopped run says which side trained and which did not."""
    parts, keep = [], "distilled"
    if comparison is None:
        done = {side: epochs for side, epochs in (trained or {}).items() if epochs > 0}
        if not done:
            parts.append(f"no comparison: the run stopped ({stop_reason}) before any student finished an epoch")
        else:
            ran = ", ".join(f"the {side} students trained {epochs} epoch(s)" for side, epochs in done.items())
            missing = [side for side in ("scratch", "distilled") if side not in done]
            parts.append(
                f"no comparison: the run stopped ({stop_reason}) after {ran}"
                + (f", before the {' and '.join(missing)} students finished an epoch" if missing else "")
            )
    elif comparison.inconclusive_reason == "unequal_training":
        ahead = (comparison.distilled_mean_accuracy or 0.0) >= (comparison.scratch_mean_accuracy or 0.0)
        keep = "distilled" if ahead else "scratch"
        parts.append(
            "inconclusive: the time budget cut the distilled students short of the epochs the scratch students "
            f"trained, so the sides were not compared alike; the {keep} student is saved for now (its mean test "
            "accuracy is the higher, which proves nothing yet): rerun as the comparison says"
        )
    elif comparison.verdict == "inconclusive":
        parts.append(
            "inconclusive: the teacher is no better than a scratch student, so distillation was not tested; keep the "
            "scratch student and get a better teacher first (what to change is in the comparison)"
        )
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
        parts.append(
            f"no verdict from fewer than {verdict_seed_floor()} paired seeds: run seeds >= {verdict_seed_floor()} "
            "before choosing (the distilled student is saved meanwhile)"
        )
    if ties:
        parts.append("; ".join(ties))
    if stop_reason == "budget_share":
        parts.append(
            "SHORTENED (budget_share): the time budget held both sides to the same number of epochs (plan.replanned), "
            "so they compare alike at that length, but the students may not have finished learning"
        )
    elif stop_reason != "finished":
        parts.append(f"INCOMPLETE ({stop_reason}): the numbers come from a shortened run")
    return "; ".join(parts), keep
