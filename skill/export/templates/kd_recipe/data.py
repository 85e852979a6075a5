"""The train and test splits as torch Datasets (from a .npz, a .csv or the user's factory) and one rank's batches."""

from __future__ import annotations

import csv
import importlib
from collections.abc import Iterator, Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from kd_recipe import RecipeError


def import_object(spec: str, field: str) -> Any:
    """'package.module:name' -> the object; one line naming the setting when it cannot be found."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RecipeError(field, f"cannot import {module_name!r} ({exc}); put its folder on PYTHONPATH") from exc
    if not hasattr(module, attr):
        raise RecipeError(field, f"module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def length(data: Dataset) -> int:
    """Rows of a split. torch's Dataset declares no __len__ (an iterable-style one has none); the splits here are
    map-style, indexed by row, so they have one."""
    return len(cast(Sized, data))


class NamedClasses(TensorDataset):
    """A CSV's test split whose labels were text: it keeps their names for the release check's report."""

    def __init__(self, *tensors: torch.Tensor, class_names: list[str]) -> None:
        super().__init__(*tensors)
        self.class_names = class_names


def _tensor_split(X: np.ndarray, y: np.ndarray, name: str) -> TensorDataset:
    X = np.asarray(X)
    X = X.reshape(len(X), -1).astype(np.float32) if X.ndim != 2 else X.astype(np.float32)
    y = np.asarray(y).reshape(-1)
    if len(X) != len(y):
        raise RecipeError("data.source", f"{name}: {len(X)} inputs but {len(y)} labels")
    if not np.isfinite(X).all():
        raise RecipeError("data.source", f"{name} contains NaN or infinity")
    return TensorDataset(torch.from_numpy(X), torch.from_numpy(y.astype(np.int64)))


def _class_order(value: str) -> tuple[bool, int, str]:
    """Numeric labels in numeric order (2 before 10), as the quick distill maps them; text labels after, sorted."""
    numeric = value.lstrip("-").isdigit()
    return (not numeric, int(value) if numeric else 0, value)


def _read_csv(
    path: Path, label_column: str | None, group_column: str | None, test_fraction: float, seed: int
) -> tuple[TensorDataset, TensorDataset, np.ndarray | None]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    column = label_column if label_column is not None else header[-1]
    for field, name in (("data.label_column", column), ("data.groups", group_column)):
        if name is not None and name not in header:
            raise RecipeError(field, f"{name!r} is not a column of {path.name}")
    j = header.index(column)
    g = header.index(group_column) if group_column is not None else None  # a group column is evidence, not a feature
    try:
        X = np.array([[float(v) for i, v in enumerate(r) if i not in (j, g)] for r in body], dtype=np.float32)
    except ValueError as exc:  # a text feature, or a ragged row
        raise RecipeError("data.source", f"{path.name}: every feature column must be numeric ({exc})") from exc
    classes = sorted({r[j] for r in body}, key=_class_order)
    y = np.array([classes.index(r[j]) for r in body], dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(round(len(y) * test_fraction))
    test, train = order[:cut], order[cut:]
    groups = np.array([body[i][g] for i in test]) if g is not None else None
    test_set = _tensor_split(X[test], y[test], "test")
    if any(_class_order(c)[0] for c in classes):  # text labels: keep their names for the release check's report
        test_set = NamedClasses(*test_set.tensors, class_names=[c[:200] for c in classes])
    return _tensor_split(X[train], y[train], "train"), test_set, groups


def load_data(
    source: str, here: Path, label_column: str | None, groups: str | None, test_fraction: float, seed: int
) -> tuple[Dataset, Dataset, np.ndarray | None]:
    """(train, test, test groups or None): Datasets of (input, label), plus one group label per test row when named."""
    if ":" in source and not source.endswith((".npz", ".csv")):
        if groups is not None:
            raise RecipeError("data.groups", "is read from a .npz array or a .csv column; a Dataset factory has none")
        factory = import_object(source, "data.source")
        return factory("train"), factory("test"), None
    path = Path(source) if Path(source).is_absolute() else here / source
    if not path.is_file():
        raise RecipeError("data.source", f"{path} does not exist")
    if path.suffix == ".csv":
        return _read_csv(path, label_column, groups, test_fraction, seed)
    with np.load(path, allow_pickle=False) as archive:  # plain arrays only: a pickle is code
        missing = [
            k
            for k in ("X_train", "y_train", "X_test", "y_test", *([groups] if groups else []))
            if k not in archive.files
        ]
        if missing:
            raise RecipeError(
                "data.groups" if missing == [groups] else "data.source", f"{path.name} lacks {', '.join(missing)}"
            )
        train = _tensor_split(archive["X_train"], archive["y_train"], "train")
        test = _tensor_split(archive["X_test"], archive["y_test"], "test")
        group_labels = np.asarray(archive[groups]).reshape(-1).astype(str) if groups else None
    if group_labels is not None and len(group_labels) != len(test):
        raise RecipeError("data.groups", f"{groups} has {len(group_labels)} entries for {len(test)} test rows")
    return train, test, group_labels


class Indexed(Dataset):
    """Yields (input, label, row index) so cached teacher logits can be looked up by row."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return length(self.base)

    def __getitem__(self, i: int) -> tuple[Any, Any, int]:
        x, y = self.base[i]
        return x, y, i


class Batches:
    """Micro-batches of (inputs, labels, row indices) in the sampler's order. In-memory arrays are sliced
    directly (a DataLoader would collate row by row); any other Dataset goes through a DataLoader."""

    def __init__(self, data: Dataset, sampler: DistributedSampler, batch: int, workers: int, pin: bool) -> None:
        self.sampler, self.batch = sampler, batch
        # in-memory arrays are sliced directly; any other Dataset is read through a DataLoader
        self.source: DataLoader | tuple[torch.Tensor, ...] = (
            data.tensors
            if isinstance(data, TensorDataset)
            else DataLoader(Indexed(data), batch_size=batch, sampler=sampler, num_workers=workers, pin_memory=pin)
        )

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if isinstance(self.source, DataLoader):
            yield from self.source
            return
        X, y = self.source
        rows = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        for start in range(0, len(rows), self.batch):
            index = rows[start : start + self.batch]
            yield X[index], y[index], index


def data_shape(train: Dataset, num_classes: int | None) -> tuple[int, int]:
    """(input features, classes): classes from the config when given, else from the training labels."""
    features = int(torch.as_tensor(train[0][0]).numel())
    if num_classes:
        return features, int(num_classes)
    if isinstance(train, TensorDataset):
        return features, int(train.tensors[1].max()) + 1
    return features, int(max(int(train[i][1]) for i in range(length(train)))) + 1
