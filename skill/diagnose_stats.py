"""Evidence beyond noise for the failure modes judged from raw predictions (failure_modes.yaml statistics).

Why: a test set of a few hundred rows makes per-class, per-group and error-confidence numbers noisy; a release
decision that blocks on 15 against 13 errors, or on a one-row group, is a decision on noise. Each helper here gives
the point estimate with an interval over the test rows (Wilson for a proportion, a bootstrap over rows, drawn with
replacement, for differences), and the minimum supports come from the rules. numpy only, imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from skill.rules import get_rules

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Rows:
    """The raw arrays a diagnosis was computed from (checked by skill.diagnose)."""

    labels: np.ndarray
    student: np.ndarray
    teacher: np.ndarray | None
    groups: np.ndarray | None
    positive: int


def rules() -> dict[str, Any]:
    return get_rules().failure_modes["statistics"]


def wilson(hits: float, n: int) -> tuple[float, float]:
    """Wilson score interval of a proportion hits / n at the rules' confidence."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + float(rules()["confidence"]) / 2)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(n: int, statistic: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
    """Interval of one statistic over bootstrap resamples of the n rows (see bootstrap_many)."""
    return bootstrap_many(n, lambda w: {"value": statistic(w)})["value"]


def bootstrap_many(n: int, statistic: Callable[[np.ndarray], dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """Intervals of several statistics over the same bootstrap resamples of the n rows. Each resample is given as
    row weights (resamples x n: how often each row was drawn), built in chunks so memory stays bounded; a resample
    where a statistic is undefined (NaN) is left out of that statistic's interval."""
    import numpy as np

    boot = rules()["bootstrap"]
    rng = np.random.default_rng(int(boot["seed"]))
    values: dict[str, list[np.ndarray]] = {}
    left = int(boot["resamples"])
    while left > 0:
        size = min(left, int(boot["chunk"]))
        drawn = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        weights = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        for key, value in statistic(weights).items():
            values.setdefault(key, []).append(np.asarray(value, dtype=np.float64))
        left -= size
    tail = (1 - float(rules()["confidence"])) / 2
    out: dict[str, tuple[float, float]] = {}
    for key, parts in values.items():
        joined = np.concatenate(parts)
        joined = joined[np.isfinite(joined)]
        if len(joined) == 0:
            out[key] = (float("nan"), float("nan"))
            continue
        low, high = np.quantile(joined, [tail, 1 - tail])
        out[key] = (float(low), float(high))
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def error_confidence_gap(rows: Rows) -> dict[str, Any] | None:
    """Student minus teacher mean top probability on each one's own wrong predictions, with a bootstrap interval
    over rows and the error counts behind it; None without a teacher."""
    import numpy as np

    if rows.teacher is None:
        return None
    wrong_s = (rows.student.argmax(1) != rows.labels).astype(np.float64)
    wrong_t = (rows.teacher.argmax(1) != rows.labels).astype(np.float64)
    conf_s, conf_t = rows.student.max(1) * wrong_s, rows.teacher.max(1) * wrong_t
    errors = {"student": int(wrong_s.sum()), "teacher": int(wrong_t.sum())}
    if min(errors.values()) == 0:
        return {"errors": errors, "difference": None, "interval": None}
    difference = float(conf_s.sum() / wrong_s.sum() - conf_t.sum() / wrong_t.sum())
    low, high = bootstrap(len(rows.labels), lambda w: _ratio(w @ conf_s, w @ wrong_s) - _ratio(w @ conf_t, w @ wrong_t))
    return {"errors": errors, "difference": difference, "interval": [low, high]}


def group_shift(rows: Rows) -> dict[str, Any] | None:
    """Per-group accuracy and selection rate of both models on groups with enough rows, the widening of the
    best-to-worst accuracy gap, the spread of the groups' losses and the relative parity drop, each with a bootstrap
    interval over rows; groups below min_group_support are listed, not judged. None without groups or a teacher."""
    import numpy as np

    if rows.groups is None or rows.teacher is None:
        return None
    minimum = int(rules()["bias_amplification"]["min_group_support"])
    names, counts = np.unique(np.asarray(rows.groups).astype(str), return_counts=True)
    small = {str(g): int(c) for g, c in zip(names, counts, strict=True) if c < minimum}
    kept = [str(g) for g, c in zip(names, counts, strict=True) if c >= minimum]
    result: dict[str, Any] = {"too_small": small, "groups": kept, "min_group_support": minimum}
    if len(kept) < 2:
        return result
    groups = np.asarray(rows.groups).astype(str)
    member = np.stack([(groups == g).astype(np.float64) for g in kept], axis=1)  # rows x groups
    hit_s = (rows.student.argmax(1) == rows.labels).astype(np.float64)
    hit_t = (rows.teacher.argmax(1) == rows.labels).astype(np.float64)
    pos_s = (rows.student.argmax(1) == rows.positive).astype(np.float64)
    pos_t = (rows.teacher.argmax(1) == rows.positive).astype(np.float64)

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        size = w @ member
        acc_s, acc_t = _ratio(w @ (member * hit_s[:, None]), size), _ratio(w @ (member * hit_t[:, None]), size)
        sel_s, sel_t = _ratio(w @ (member * pos_s[:, None]), size), _ratio(w @ (member * pos_t[:, None]), size)
        widening = (acc_s.max(-1) - acc_s.min(-1)) - (acc_t.max(-1) - acc_t.min(-1))
        losses = np.maximum(acc_t - acc_s, 0.0)
        parity_s = _ratio(sel_s.min(-1), sel_s.max(-1))
        parity_t = _ratio(sel_t.min(-1), sel_t.max(-1))
        return {
            "widening": widening,
            "loss_spread": losses.max(-1) - losses.min(-1),
            "parity_drop": _ratio(parity_t - parity_s, parity_t),
            "acc_s": acc_s,
            "acc_t": acc_t,
            "parity_s": parity_s,
            "parity_t": parity_t,
        }

    point = stats(np.ones((1, len(rows.labels))))
    result.update(
        student_group_accuracy=dict(zip(kept, point["acc_s"][0].tolist(), strict=True)),
        teacher_group_accuracy=dict(zip(kept, point["acc_t"][0].tolist(), strict=True)),
        student_parity_ratio=float(point["parity_s"][0]),
        teacher_parity_ratio=float(point["parity_t"][0]),
    )
    keys = ("widening", "loss_spread", "parity_drop")
    intervals = bootstrap_many(len(rows.labels), lambda w: {k: v for k, v in stats(w).items() if k in keys})
    for key in keys:
        value = float(point[key][0])
        result[key] = value if math.isfinite(value) else None
        result[key + "_interval"] = list(intervals[key]) if math.isfinite(value) else None
    return result
