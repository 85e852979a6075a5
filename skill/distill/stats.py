"""Is the distilled student really better? Two sources of noise, both measured (Bouthillier et al. 2021):

- seeds (initialisation and batch order): a paired t interval of the mean gain over seeds (scipy.stats.t);
- the test set (which rows happened to be drawn): a paired bootstrap over test rows of the same mean gain.

Their widths are added in quadrature (independent sources of variance). A gain is a gain
only when the combined 95% interval excludes 0. One seed gives the test-set interval and no verdict. McNemar's exact
test on the paired predictions of the saved pair is reported too (Dietterich 1998).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_CELLS = 20_000_000  # resamples x test rows held at once; fewer resamples on a very large test set


@dataclass
class Interval:
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def seed_interval(gains: list[float], level: float = LEVEL) -> Interval | None:
    """Paired t interval of the mean over seeds; None below two seeds (no spread to measure)."""
    n = len(gains)
    if n < 2:
        return None
    mean, sd = float(np.mean(gains)), float(np.std(gains, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    return Interval(mean - half, mean + half)


def bootstrap_interval(correct_a: np.ndarray, correct_b: np.ndarray, level: float = LEVEL, seed: int = 0) -> Interval:
    """Paired bootstrap over test rows of mean(correct_b - correct_a) in points; inputs [seeds, rows] of 0/1."""
    diff = (np.asarray(correct_b, float) - np.asarray(correct_a, float)).reshape(-1, np.shape(correct_a)[-1]).mean(
        0
    ) * 100
    n = len(diff)
    samples = int(max(200, min(BOOTSTRAP_SAMPLES, BOOTSTRAP_CELLS // max(n, 1))))
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, n, size=(samples, n))].mean(1)
    tail = (1 - level) / 2 * 100
    return Interval(float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))


def combined_interval(mean: float, by_seed: Interval | None, by_test: Interval) -> Interval:
    """Each side's distance from the mean added in quadrature (the bootstrap side may be asymmetric); with one seed
    this is the test-set interval itself."""
    seed_half = by_seed.half_width if by_seed else 0.0
    return Interval(
        mean - float(np.hypot(seed_half, mean - by_test.low)), mean + float(np.hypot(seed_half, by_test.high - mean))
    )


def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar test: among rows where exactly one model is right, is either side more frequent than chance?"""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)


@dataclass
class RowsTest:
    favour_a: int
    favour_b: int
    p: float

    @property
    def discordant(self) -> int:
        return self.favour_a + self.favour_b


def rows_sign_test(correct_a: np.ndarray, correct_b: np.ndarray) -> RowsTest:
    """Exact McNemar (binomial sign) test over test rows with every seed: each row counts once, for the side its
    seeds got right more often (rows where the sides tie are left out), so the same few rows flipping on every seed
    count as those few rows, not once per seed. A bootstrap over rows is too narrow when only a handful differ:
    4 rows of 200 fixed on 3 seeds gave an interval of +0.5 to +4.0 points while this test gives p = 0.125
    (Dietterich 1998 recommends McNemar's test for comparing two classifiers on one test set)."""
    diff = (np.asarray(correct_b, float) - np.asarray(correct_a, float)).reshape(-1, np.shape(correct_a)[-1]).mean(0)
    favour_b, favour_a = int(np.sum(diff > 1e-12)), int(np.sum(diff < -1e-12))
    if favour_a + favour_b == 0:
        return RowsTest(0, 0, 1.0)
    return RowsTest(favour_a, favour_b, float(stats.binomtest(favour_b, favour_a + favour_b, 0.5).pvalue))
