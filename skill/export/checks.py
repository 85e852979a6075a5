"""Export-time checks that run none of the user's code: import paths located and parsed, data shapes read
from file headers, the runner nets' sizes computed by arithmetic (no torch, no allocation)."""

from __future__ import annotations

import ast
import sys
import zipfile
from pathlib import Path

import numpy as np

from skill.errors import InputError

MAX_LABEL_BYTES = 256 * 1024 * 1024


def _module_file(module: str, search: list[str]) -> Path | None:
    """Where `import module` would find its source, looked up on the path without importing anything."""
    parts = module.split(".")
    for entry in search:
        base = Path(entry or ".")
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def check_import_path(spec: str, field: str, search: list[str] | None = None) -> Path:
    """'package.module:name' must name a source file on the path that defines `name` at top level (parsed, not run)."""
    module, _, attr = spec.partition(":")
    search = list(sys.path if search is None else search)
    source = _module_file(module, search)
    if source is None:
        raise InputError(field, f"module {module!r} of {spec!r} is not on the Python path; add its folder to PYTHONPATH, or set check_imports false to export for another machine")
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(field, f"{source.name} does not parse as Python: {exc}") from exc
    names = _module_level_names(tree.body)
    # a star import, a module __getattr__, or a module that replaces itself in sys.modules (transformers' lazy
    # modules): the name cannot be known without running it
    dynamic = "*" in names or "__getattr__" in names or _replaces_itself(tree)
    if attr not in names and not dynamic:
        raise InputError(field, f"{source} defines no top-level {attr!r} (found: {', '.join(sorted(names)[:12]) or 'nothing'})")
    return source


def _module_level_names(body: list[ast.stmt]) -> set[str]:
    """Names bound at module level, including inside if/try/with/for blocks (`try: import torch` then
    `if torch: def make(): ...` is a common way to define a factory); never inside functions or classes."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        for block in ("body", "orelse", "finalbody"):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and isinstance(getattr(node, block, None), list):
                names |= _module_level_names(getattr(node, block))
        for handler in getattr(node, "handlers", []) or []:
            names |= _module_level_names(handler.body)
    return names


def _replaces_itself(tree: ast.Module) -> bool:
    """`sys.modules[__name__] = ...` at module level: the module's attributes are decided at run time."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute) and target.value.attr == "modules":
                    return True
    return False


def _npy_header(archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        # the header only: the data stays on disk
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        shape, _, dtype = read(handle) if read else np.lib.format._read_array_header(handle, version)
    return shape, dtype


def npz_shape(path: Path) -> tuple[int, int]:
    """(input features, classes) of an .npz dataset; the inputs are never loaded, only the label arrays."""
    try:
        with zipfile.ZipFile(path) as archive:
            keys = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
            missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in keys]
            if missing:
                raise InputError("data", f"{path.name} lacks {', '.join(missing)}; it holds {', '.join(sorted(keys)) or 'nothing'}")
            shape, dtype = _npy_header(archive, "X_train")
            for key in ("X_train", "X_test", "y_train", "y_test"):
                if _npy_header(archive, key)[1].hasobject:
                    raise InputError("data", f"{path.name}: {key} is an object array (pickle); save plain numeric arrays")
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InputError("data", f"{path.name} is not a readable .npz archive: {exc}") from exc
    if len(shape) < 2 or shape[0] == 0:
        raise InputError("data", f"X_train of {path.name} has shape {shape}; expected (samples, features...)")
    features = int(np.prod(shape[1:]))
    try:
        with np.load(path, allow_pickle=False) as arrays:
            labels = [np.asarray(arrays[k]).reshape(-1) for k in ("y_train", "y_test")]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputError("data", f"{path.name}: cannot read the labels: {exc}") from exc
    if any(len(y) == 0 for y in labels):
        raise InputError("data", f"{path.name}: y_train and y_test must not be empty")
    if any(not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) or not np.all(np.mod(y, 1) == 0) or y.min() < 0 for y in labels):
        raise InputError("data", f"{path.name}: y_train and y_test must hold integer class ids 0..K-1")
    return features, int(max(int(y.max()) for y in labels)) + 1


def csv_shape(path: Path, label_column: str | None) -> tuple[int, int]:
    """(features, classes) of a CSV, streamed row by row: a full-scale file is never held in memory."""
    import csv

    labels: set[str] = set()
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            column = label_column if label_column is not None else (header[-1] if header else "")
            if column not in header:
                raise InputError("label_column", f"{column!r} is not a column of {path.name}; columns: {', '.join(header[:20])}")
            j = header.index(column)
            rows = 0
            for row in reader:
                rows += 1
                if len(row) > j:
                    labels.add(row[j])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError("data", f"{path.name} is not a readable UTF-8 CSV file: {exc}") from exc
    if rows < 2:
        raise InputError("data", f"{path.name} needs a header and at least two rows")
    return len(header) - 1, len(labels)


def runner_net_params(kind: str, features: int, hidden: list[int], classes: int) -> int:
    """Parameters of skill.distill.nets' MLP or CNN, by arithmetic (a test checks it against the real nets)."""
    if kind == "cnn":
        c1, c2 = (hidden + hidden)[:2]
        return (9 * c1 + c1) + (9 * c1 * c2 + c2) + (4 * c2 * classes + classes)
    total, width = 0, features
    for h in hidden:
        total += width * h + h
        width = h
    return total + width * classes + classes
