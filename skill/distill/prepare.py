"""Prepare a loaded dataset before training: standardise features with training statistics (kept, so the saved
student can be used on raw inputs) and hash rows to catch test rows leaking into the training or transfer data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from skill.distill.data import Dataset
from skill.errors import InputError


@dataclass
class Scaler:
    """x_student = (x_raw - mean) / std; mean and std broadcast over the feature axis."""

    kind: str  # per_feature, global or none
    mean: np.ndarray
    std: np.ndarray

    def apply(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.std).astype(np.float32)


def fit_scaler(kind: str, X_train: np.ndarray, X_unlabeled: np.ndarray) -> Scaler:
    """Statistics from training inputs only (labelled and unlabelled), never from validation or test rows.
    per_feature for tabular columns; one global mean and std for images and signals, which keeps their shape."""
    width = X_train.shape[1]
    if kind == "none":
        return Scaler("none", np.zeros(width, np.float32), np.ones(width, np.float32))
    rows = np.concatenate([X_train, X_unlabeled]) if len(X_unlabeled) else X_train
    rows = rows.astype(np.float64)
    if kind == "global":
        mean, std = np.full(width, rows.mean()), np.full(width, rows.std())
    else:
        mean, std = rows.mean(0), rows.std(0)
    std = np.where(std > 1e-12, std, 1.0)  # a constant column stays constant (at 0) instead of dividing by zero
    return Scaler(kind, mean.astype(np.float32), std.astype(np.float32))


def standardise(data: Dataset, scaler: Scaler) -> Dataset:
    if scaler.kind == "none":
        return data
    return replace(
        data,
        X_train=scaler.apply(data.X_train),
        X_val=scaler.apply(data.X_val),
        X_test=scaler.apply(data.X_test),
        X_unlabeled=scaler.apply(data.X_unlabeled),
    )


def _keys(X: np.ndarray) -> list[bytes]:
    """A 128-bit BLAKE2b digest of each row's float32 bytes: equal rows, equal keys, 16 bytes a row in memory
    (a chance collision is about 2^-128 per pair)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in X]


def check_leaks(data: Dataset) -> list[str]:
    """Refuse a user's transfer set that contains test rows (the teacher would label the test set for the student);
    return warnings for test rows that also appear among the training or validation rows."""
    test = set(_keys(data.X_test))
    moved = len(data.unlabeled_from_train_index)
    external = data.X_unlabeled[moved:]  # X_unlabeled = rows moved from the train split, then the user's own rows
    leaked = sum(k in test for k in _keys(external))
    if leaked:
        raise InputError(
            "X_unlabeled",
            f"{leaked} of its {len(external)} rows are identical to test rows; a transfer set must not "
            "contain the test set (the teacher would label the test rows for the student): remove them",
        )
    warnings = []
    for name, X in (("training", data.X_train), ("validation", data.X_val), ("transfer-set", data.X_unlabeled[:moved])):
        dup = sum(k in test for k in _keys(X))
        if dup:
            warnings.append(
                f"{dup} {name} rows are identical to test rows: test accuracy may be optimistic; deduplicate the data"
            )
    return warnings


def class_gaps(data: Dataset) -> list[str]:
    """Warnings for class ids the labelled rows never show: test classes no student can learn (they cap every
    side's accuracy alike), and ids below the largest that no split has (the classes are counted as 0..largest)."""
    seen = set(np.unique(np.concatenate([data.y_train, data.y_val])).tolist())
    in_test = set(np.unique(data.y_test).tolist())
    warnings = []
    unseen = sorted(in_test - seen)
    if unseen:
        share = float(np.isin(data.y_test, unseen).mean())
        warnings.append(
            f"y_test has class(es) {unseen} that no labelled training row has: no student can predict them, which "
            f"caps every accuracy at {1 - share:.1%} ({share:.1%} of the test rows); check that both splits use the "
            "same class ids"
        )
    absent = sorted(set(range(data.num_classes)) - seen - in_test)
    if absent:
        warnings.append(
            f"class id(s) {absent} appear in no split: the run counts {data.num_classes} classes (0 to the largest "
            "id); relabel the classes as 0..K-1 if these do not exist"
        )
    return warnings
