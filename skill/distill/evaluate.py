"""Measure a trained model the way a careful engineer would: accuracy, per-class, ECE, size, latency."""

from __future__ import annotations

import time

import numpy as np
import torch

from skill import metrics
from skill.distill.report import ModelMetrics


def logits_of(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(X)
    return out[0] if isinstance(out, tuple) else out


def latency(model: torch.nn.Module, X: torch.Tensor, repeats: int = 50) -> tuple[float, float]:
    """(median ms for one sample, samples per second at batch 256), after a warm-up."""
    one = X[:1]
    batch = X[torch.arange(256) % len(X)]  # 256 rows, cycling through a smaller test set
    with torch.no_grad():
        for _ in range(5):
            model(one)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(one)
            times.append(time.perf_counter() - t0)
        model(batch)  # warm-up at this size: the first call allocates
        batch_times = []
        for _ in range(7):
            t0 = time.perf_counter()
            model(batch)
            batch_times.append(time.perf_counter() - t0)
    # medians: on a shared machine one descheduled call made the same student 200x slower in one row than in the next
    return float(np.median(times) * 1000), float(len(batch) / np.median(batch_times))


def model_metrics(
    probs: np.ndarray, labels: np.ndarray, num_classes: int, params: int, size: int, timing: tuple[float, float]
) -> ModelMetrics:
    predictions = probs.argmax(1)
    return ModelMetrics(
        accuracy=metrics.accuracy(labels, predictions),
        per_class_accuracy=metrics.per_class_accuracy(labels, predictions, num_classes),
        ece=metrics.expected_calibration_error(labels, probs),
        error_confidence=metrics.error_confidence(labels, probs),
        params=params,
        size_bytes=size,
        latency_ms_batch1=timing[0],
        throughput_per_s_batch256=timing[1],
        reliability=[list(b) for b in metrics.reliability_bins(labels, probs)],
    )
