"""Metrics a careful engineer checks on a distilled model (numpy only, so the core stays light)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from skill.rules import get_rules

if TYPE_CHECKING:
    import numpy as np


def distillation_score(
    alpha: float, student_size: float, teacher_size: float, student_acc: float, teacher_acc: float
) -> tuple[float, float, float]:
    """DS = alpha*(size ratio) + (1-alpha)*(1 - accuracy ratio). Lower is better.

    Returns (score, size_term, accuracy_term).
    """
    size_term = alpha * (student_size / teacher_size)
    accuracy_term = (1 - alpha) * (1 - student_acc / teacher_acc)
    return size_term + accuracy_term, size_term, accuracy_term


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    import numpy as np  # lazy: the advisory path must start fast

    return float(np.mean(labels == predictions)) if len(labels) else 0.0


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int | None = None) -> dict[str, float]:
    """Accuracy of each class present in `labels` (class id as a string key)."""
    import numpy as np  # lazy: the advisory path must start fast

    classes = range(num_classes) if num_classes is not None else np.unique(labels)
    out = {}
    for c in classes:
        mask = labels == c
        if mask.any():
            out[str(int(c))] = float(np.mean(predictions[mask] == c))
    return out


def class_support(labels: np.ndarray) -> dict[str, int]:
    import numpy as np  # lazy: the advisory path must start fast

    values, counts = np.unique(labels, return_counts=True)
    return {str(int(v)): int(n) for v, n in zip(values, counts, strict=True)}


def reliability_bins(labels: np.ndarray, probs: np.ndarray, bins: int | None = None) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) for each non-empty equal-width confidence bin (15 by default, from the rules).

    Bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 goes to the first bin.
    """
    import numpy as np  # lazy: the advisory path must start fast

    bins = bins or int(get_rules().failure_modes["modes"]["temperature_blindness"]["thresholds"]["ece_bins"])
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    index = np.clip(np.searchsorted(np.linspace(0.0, 1.0, bins + 1), confidence, side="left") - 1, 0, bins - 1)
    return [
        (float(confidence[index == b].mean()), float(correct[index == b].mean()), int((index == b).sum()))
        for b in range(bins)
        if (index == b).any()
    ]


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int | None = None) -> float:
    """ECE: the share-weighted mean of |accuracy - confidence| over the reliability bins."""
    table = reliability_bins(labels, probs, bins)
    total = sum(count for _, _, count in table)
    return float(sum(count / total * abs(acc - conf) for conf, acc, count in table)) if total else 0.0


def error_confidence(labels: np.ndarray, probs: np.ndarray) -> float | None:
    """Mean top probability on wrong predictions (None when there are none)."""
    wrong = probs.argmax(axis=1) != labels
    return float(probs.max(axis=1)[wrong].mean()) if wrong.any() else None


def group_accuracy(labels: np.ndarray, predictions: np.ndarray, groups: Sequence[str] | np.ndarray) -> dict[str, float]:
    """Accuracy within each group (for the fairness clause of compression-amplified bias)."""
    import numpy as np  # lazy: the advisory path must start fast

    groups = np.asarray(groups)
    return {str(g): float(np.mean(predictions[groups == g] == labels[groups == g])) for g in np.unique(groups)}


def parity_ratio(predictions: np.ndarray, groups: Sequence[str] | np.ndarray, positive_class: int = 1) -> float | None:
    """Demographic parity ratio: lowest group rate of predicting `positive_class` over the highest (1 is parity)."""
    import numpy as np  # lazy: the advisory path must start fast

    groups = np.asarray(groups)
    rates = [float(np.mean(predictions[groups == g] == positive_class)) for g in np.unique(groups)]
    if len(rates) < 2 or max(rates) == 0:
        return None
    return min(rates) / max(rates)
