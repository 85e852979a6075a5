"""Datasets for the runner: bundled digits, or the user's .npz / .csv, checked before any training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skill.distill import sources
from skill.distill.bounded import (
    DATASET_MEMBERS,
    MAX_CLASSES,
    MAX_FEATURES,
    MAX_FILE_BYTES,
    MAX_ROWS,
    read_csv_bounded,
    read_npz_members,
)
from skill.errors import InputError


@dataclass
class Dataset:
    """Float32 features and int64 labels, already split; X_unlabeled may be empty."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_unlabeled: np.ndarray
    groups_test: np.ndarray | None
    num_classes: int
    name: str
    # indices into the original train split, so precomputed teacher logits can be aligned
    train_index: np.ndarray
    val_index: np.ndarray
    unlabeled_from_train_index: np.ndarray

    @property
    def image_side(self) -> int | None:
        side = int(round(self.X_train.shape[1] ** 0.5))
        return side if side * side == self.X_train.shape[1] and side >= 4 else None


def _check_features(name: str, X: np.ndarray, width: int | None) -> np.ndarray:
    if X.ndim != 2:
        X = X.reshape(len(X), -1) if X.ndim > 2 else X
    if X.ndim != 2:
        raise InputError(name, f"must be a 2-D array (samples x features); got shape {X.shape}")
    if len(X) == 0:
        raise InputError(name, "is empty")
    if X.shape[1] == 0:
        raise InputError(name, "has no feature columns; the net would learn from nothing")
    if len(X) > MAX_ROWS or X.shape[1] > MAX_FEATURES:
        raise InputError(name, f"shape {X.shape} exceeds the limits of {MAX_ROWS} rows and {MAX_FEATURES} features")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise InputError(name, f"must be numeric; got dtype {X.dtype}")
    X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise InputError(name, "contains NaN or infinity; clean or impute it first")
    if width is not None and X.shape[1] != width:
        raise InputError(name, f"has {X.shape[1]} features but X_train has {width}")
    return X


def _check_labels(name: str, y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise InputError(name, f"has {len(y)} labels but the matching X has {n} rows")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise InputError(name, f"must hold integer class ids 0..K-1; got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= MAX_CLASSES:
        raise InputError(name, f"class ids must lie in 0..{MAX_CLASSES - 1}; got {y.min()}..{y.max()}")
    return y.astype(np.int64)


def _split(rng: np.random.Generator, n: int, fraction: float, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of indices: (kept, held) with about `fraction` of each class held."""
    kept: list[int] = []
    held: list[int] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * fraction)) if len(idx) > 1 else 0
        held.extend(idx[:k])
        kept.extend(idx[k:])
    return np.sort(np.array(kept, dtype=np.int64)), np.sort(np.array(held, dtype=np.int64))


def _read_npz(shown: str, label_column: str | None = None) -> dict[str, np.ndarray]:
    with sources.open_binary(shown, "dataset") as handle:
        return read_npz_members(handle, Path(shown).name, "dataset", DATASET_MEMBERS)


def _read_csv(shown: str, label_column: str | None) -> tuple[np.ndarray, np.ndarray]:
    with sources.open_binary(shown, "dataset") as handle:
        return read_csv_bounded(handle, Path(shown).name, label_column)


@dataclass
class _Raw:
    """A source's arrays before any check: its train/test split, and the unlabeled rows and groups it may have."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str
    X_unlabeled: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    groups_test: np.ndarray | None = None


def _from_digits(split_rng: np.random.Generator, test_fraction: float) -> _Raw:
    """The bundled digits, scaled to 0..1 and split: they come without a test split."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    train_idx, test_idx = _split(split_rng, len(y), test_fraction, y)
    return _Raw(X[train_idx], y[train_idx], X[test_idx], y[test_idx], "digits")


def _from_npz(spec: str, path: Path) -> _Raw:
    """An .npz's arrays: it brings its own test split, so a missing one is refused rather than made up."""
    arrays = _read_npz(spec)
    missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in arrays]
    if missing:
        raise InputError(
            "dataset", f"{path.name} lacks {', '.join(missing)}; it holds {', '.join(arrays) or 'nothing'}"
        )
    raw = _Raw(arrays["X_train"], arrays["y_train"], arrays["X_test"], arrays["y_test"], path.name)
    if "X_unlabeled" in arrays:
        raw.X_unlabeled = arrays["X_unlabeled"]
    raw.groups_test = arrays.get("groups_test")
    return raw


def _from_csv(
    spec: str, path: Path, label_column: str | None, test_fraction: float, split_rng: np.random.Generator
) -> _Raw:
    """A CSV's rows split into train and test; refused when the split leaves no test rows."""
    X, y = _read_csv(spec, label_column)
    train_idx, test_idx = _split(split_rng, len(y), test_fraction, y)
    if len(test_idx) == 0:
        raise InputError(
            "test_fraction",
            f"{test_fraction:g} of each class of {path.name} rounds to no test rows (its classes have "
            f"{np.bincount(y).min()}..{np.bincount(y).max()} rows); give more rows per class, or an .npz with "
            "X_test",
        )
    return _Raw(X[train_idx], y[train_idx], X[test_idx], y[test_idx], path.name)


def _read_source(spec: str, label_column: str | None, test_fraction: float) -> _Raw:
    """The arrays of digits or of the user's file, whose kind and size are checked before it is read."""
    split_rng = np.random.default_rng(12345)  # fixed: the test set is the same for every seed
    if spec == "digits":
        return _from_digits(split_rng, test_fraction)
    path = Path(spec)
    if path.suffix not in (".npz", ".csv"):
        raise InputError("dataset", f"{path.name}: accepted are 'digits', .npz and .csv")
    try:
        size = sources.size_of(spec)
    except OSError:
        raise InputError("dataset", f"{spec!r} is not 'digits' or an existing .npz/.csv file") from None
    if size > MAX_FILE_BYTES:
        raise InputError("dataset", f"{path.name} is {size / 2**20:.0f} MiB; at most {MAX_FILE_BYTES // 2**20} MiB")
    if path.suffix == ".npz":
        return _from_npz(spec, path)
    return _from_csv(spec, path, label_column, test_fraction, split_rng)


def _checked(raw: _Raw) -> tuple[_Raw, int]:
    """The arrays checked (shapes, dtypes, finite values, class ids, group count) and the number of classes."""
    X_train = _check_features("X_train", np.asarray(raw.X_train), None)
    width = X_train.shape[1]
    X_test = _check_features("X_test", np.asarray(raw.X_test), width)
    y_train = _check_labels("y_train", raw.y_train, len(X_train))
    y_test = _check_labels("y_test", raw.y_test, len(X_test))
    if raw.X_unlabeled.size:
        X_unlabeled = _check_features("X_unlabeled", np.asarray(raw.X_unlabeled), width)
    else:
        X_unlabeled = np.zeros((0, width), dtype=np.float32)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    if num_classes < 2 or len(np.unique(y_train)) < 2:
        raise InputError("y_train", "needs at least two classes")
    if num_classes > MAX_CLASSES:
        raise InputError(
            "y_train", f"has {num_classes} classes (largest class id {num_classes - 1}); at most {MAX_CLASSES}"
        )
    groups_test = raw.groups_test
    if groups_test is not None:
        groups_test = np.asarray(groups_test).astype(str).reshape(-1)
        if len(groups_test) != len(X_test):
            raise InputError("groups_test", f"has {len(groups_test)} entries but X_test has {len(X_test)} rows")
    return _Raw(X_train, y_train, X_test, y_test, raw.name, X_unlabeled, groups_test), num_classes


def load_dataset(
    spec: str,
    *,
    label_column: str | None,
    test_fraction: float,
    val_fraction: float,
    labeled_fraction: float,
    seed: int,
) -> Dataset:
    """Load, check and split. Splits are stratified and seeded; the test split never changes with the seed."""
    raw, num_classes = _checked(_read_source(spec, label_column, test_fraction))
    X_train, y_train, X_unlabeled = raw.X_train, raw.y_train, raw.X_unlabeled
    rng = np.random.default_rng(seed)
    keep, val = _split(rng, len(y_train), val_fraction, y_train)
    unlabeled_from_train = np.zeros(0, dtype=np.int64)
    if labeled_fraction < 1.0:
        keep_labeled, moved = _split(rng, len(keep), 1.0 - labeled_fraction, y_train[keep])
        unlabeled_from_train = keep[moved]
        keep = keep[keep_labeled]
        X_unlabeled = np.concatenate([X_train[unlabeled_from_train], X_unlabeled])
    return Dataset(
        X_train=X_train[keep],
        y_train=y_train[keep],
        X_val=X_train[val],
        y_val=y_train[val],
        X_test=raw.X_test,
        y_test=raw.y_test,
        X_unlabeled=X_unlabeled,
        groups_test=raw.groups_test,
        num_classes=num_classes,
        name=raw.name,
        train_index=keep,
        val_index=val,
        unlabeled_from_train_index=unlabeled_from_train,
    )
