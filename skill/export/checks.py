"""Export-time checks that run none of the user's code: import paths located and parsed, data shapes read
from file headers, the runner nets' sizes computed by arithmetic (no torch, no allocation)."""

from __future__ import annotations

import ast
import io
import struct
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from skill.errors import InputError
from skill.export.opened import open_binary

MAX_LABEL_BYTES = 256 * 1024 * 1024
MAX_EXPORT_CLASSES = 100_000
_CHUNK_BYTES = 16 * 1024 * 1024


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
        raise InputError(
            field,
            f"module {module!r} of {spec!r} is not on the Python path; add its folder to PYTHONPATH, or set "
            "check_imports false to export for another machine",
        )
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        where = (
            f"{exc.msg} (line {exc.lineno})" if isinstance(exc, SyntaxError) else type(exc).__name__
        )  # str(SyntaxError) names the server's path
        raise InputError(field, f"module {module!r} ({source.name}) does not parse as Python: {where}") from exc
    names = _module_level_names(tree.body)
    # a star import, a module __getattr__, or a module that replaces itself in sys.modules (transformers' lazy
    # modules): the name cannot be known without running it
    dynamic = "*" in names or "__getattr__" in names or _replaces_itself(tree)
    if attr not in names and not dynamic:
        raise InputError(
            field,
            f"module {module!r} ({source.name}) defines no top-level {attr!r} (found: "
            f"{', '.join(sorted(names)[:12]) or 'nothing'})",
        )
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
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and isinstance(
                getattr(node, block, None), list
            ):
                names |= _module_level_names(getattr(node, block))
        for handler in getattr(node, "handlers", []) or []:
            names |= _module_level_names(handler.body)
    return names


def _replaces_itself(tree: ast.Module) -> bool:
    """`sys.modules[__name__] = ...` at module level: the module's attributes are decided at run time."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Attribute)
                    and target.value.attr == "modules"
                    and isinstance(target.slice, ast.Name)
                    and target.slice.id == "__name__"
                ):  # itself, not another module (os sets os.path)
                    return True
    return False


def _npy_header(handle: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(handle)
    # the header only: the data stays on disk
    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read:
        shape, _, dtype = read(handle)
    else:  # format 3.0 (utf-8 field names): numpy's only reader is private, and absent from its type stubs
        shape, _, dtype = np.lib.format._read_array_header(handle, version)  # type: ignore[attr-defined]
    return shape, dtype


def _largest_label(archive: zipfile.ZipFile, key: str, name: str) -> int:
    """The largest class id of a label array, streamed in chunks: a small archive declaring gigabytes of labels
    is refused from its header, and memory stays bounded whatever it holds (this runs in the server)."""
    with archive.open(f"{key}.npy") as handle:
        shape, dtype = _npy_header(handle)
        count = int(np.prod(shape, dtype=np.int64))
        if dtype.hasobject or dtype.kind not in "iuf":
            raise InputError(
                "data", f"{name}: {key} has dtype {dtype}; y_train and y_test must hold integer class ids 0..K-1"
            )
        if count == 0:
            raise InputError("data", f"{name}: y_train and y_test must not be empty")
        if count * dtype.itemsize > MAX_LABEL_BYTES:
            raise InputError(
                "data",
                f"{name}: {key} declares {count:,} labels ({count * dtype.itemsize / 2**20:.0f} MiB); at most "
                f"{MAX_LABEL_BYTES // 2**20} MiB of labels are checked at export: give a Dataset factory import path "
                "instead",
            )
        largest, left, step = -1, count, max(1, _CHUNK_BYTES // dtype.itemsize)
        while left:
            n = min(step, left)
            raw = handle.read(n * dtype.itemsize)
            if len(raw) < n * dtype.itemsize:
                raise InputError("data", f"{name}: {key} is truncated")
            y = np.frombuffer(raw, dtype=dtype)
            if not np.all(np.isfinite(y)) or not np.all(np.mod(y, 1) == 0) or y.min() < 0:
                raise InputError("data", f"{name}: y_train and y_test must hold integer class ids 0..K-1")
            largest, left = max(largest, int(y.max())), left - n
    return largest


def npz_shape(path: Path) -> tuple[int, int]:
    """(input features, classes) of an .npz dataset; the inputs are never loaded, the labels only streamed."""
    from skill.distill.bounded import MAX_ZIP_ENTRIES, zip_entry_count

    try:
        with open_binary(path) as handle:
            if zip_entry_count(handle) > MAX_ZIP_ENTRIES:
                raise InputError(
                    "data", f"{path.name} has more than {MAX_ZIP_ENTRIES} entries; an .npz dataset holds a few arrays"
                )
            with zipfile.ZipFile(handle) as archive:
                keys = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
                missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in keys]
                if missing:
                    raise InputError(
                        "data",
                        f"{path.name} lacks {', '.join(missing)}; it holds {', '.join(sorted(keys)[:10]) or 'nothing'}",
                    )
                with archive.open("X_train.npy") as member:
                    shape, dtype = _npy_header(member)
                if dtype.hasobject:
                    raise InputError(
                        "data", f"{path.name}: X_train is an object array (pickle); save plain numeric arrays"
                    )
                if len(shape) < 2 or shape[0] == 0:
                    raise InputError(
                        "data", f"X_train of {path.name} has shape {shape}; expected (samples, features...)"
                    )
                largest = max(_largest_label(archive, key, path.name) for key in ("y_train", "y_test"))
    except InputError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error, NotImplementedError) as exc:
        raise InputError("data", f"{path.name} is not a readable .npz archive: {exc}") from exc
    return int(np.prod(shape[1:])), largest + 1


MAX_LINE_CHARS = 2 * 2**20  # one CSV line (a header of 10,001 long names fits); longer is not a table row


def _bounded_lines(text: io.TextIOBase, name: str) -> Iterator[str]:
    """Lines of at most MAX_LINE_CHARS: csv.reader then never builds a row from a 150 MB line of commas."""
    while True:
        line = text.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) > MAX_LINE_CHARS:
            raise InputError("data", f"{name} has a line longer than {MAX_LINE_CHARS // 2**20} MiB; is it a CSV table?")
        yield line


def csv_shape(path: Path, label_column: str | None) -> tuple[int, int]:
    """(features, classes) of a CSV, streamed with the quick-distill reader's bounds (skill.distill.bounded): file
    bytes, columns, characters per field and per line, values (rows x columns), distinct labels. It runs in the
    server, so neither memory nor time may grow past them, whatever the file holds (issue 22: a 154 MiB header of 20
    million columns took the server from 86 to 1,836 MiB)."""
    import csv

    from skill.distill.bounded import MAX_CSV_VALUES, MAX_FEATURES, MAX_FIELD_CHARS, MAX_FILE_BYTES

    labels: set[str] = set()
    previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        with open_binary(path) as raw:
            raw.seek(0, io.SEEK_END)
            size = raw.tell()
            raw.seek(0)
            if size > MAX_FILE_BYTES:
                raise InputError(
                    "data",
                    f"{path.name} is {size / 2**20:.0f} MiB; a CSV is checked and loaded up to "
                    f"{MAX_FILE_BYTES // 2**20} MiB (the recipe reads it whole): give a Dataset factory import path "
                    "'package.module:factory' instead",
                )
            with io.TextIOWrapper(
                raw, newline="", encoding="utf-8-sig"
            ) as handle:  # -sig: a BOM is not part of the first column's name
                reader = csv.reader(_bounded_lines(handle, path.name))
                header = next(reader, [])
                if len(header) > MAX_FEATURES + 1:
                    raise InputError(
                        "data",
                        f"{path.name} has {len(header):,} columns; at most {MAX_FEATURES + 1:,} (features and the "
                        "label)",
                    )
                column = label_column if label_column is not None else (header[-1] if header else "")
                if column not in header:
                    raise InputError(
                        "label_column",
                        f"{column!r} is not a column of {path.name}; columns: {', '.join(h[:40] for h in header[:20])}",
                    )
                j = header.index(column)
                max_rows = MAX_CSV_VALUES // max(1, len(header))
                rows = 0
                for row in reader:
                    rows += 1
                    if rows > max_rows:
                        raise InputError(
                            "data",
                            f"{path.name} has more than {max_rows:,} rows of {len(header):,} columns; the recipe "
                            f"loads a CSV whole, up to {MAX_CSV_VALUES:,} values: give a Dataset factory import path "
                            "instead",
                        )
                    if len(row) > MAX_FEATURES + 1:
                        raise InputError(
                            "data",
                            f"{path.name} line {reader.line_num} has {len(row):,} fields; the header has "
                            f"{len(header):,}",
                        )
                    if len(row) > j:
                        labels.add(row[j])
                        if (
                            len(labels) > MAX_EXPORT_CLASSES
                        ):  # this runs in the server: the set must not grow with the file
                            raise InputError(
                                "label_column",
                                f"{column!r} of {path.name} has more than {MAX_EXPORT_CLASSES:,} distinct values "
                                f"by row {rows}; is it the label column?",
                            )
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError("data", f"{path.name} is not a readable UTF-8 CSV file: {str(exc)[:120]}") from exc
    finally:
        csv.field_size_limit(previous_limit)
    if rows < 2:
        raise InputError("data", f"{path.name} needs a header and at least two rows")
    return len(header) - 1, len(labels)


_SAFETENSORS_ITEMSIZE = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
MAX_SAFETENSORS_HEADER = 100 * 2**20


def check_safetensors(path: Path, field: str) -> None:
    """The file's header parses and every tensor's shape and dtype match the bytes it points at (header only)."""
    import json

    with open_binary(path) as handle:
        length = int.from_bytes(handle.read(8), "little")
        if not 2 <= length <= MAX_SAFETENSORS_HEADER:
            raise InputError(
                field,
                f"{path.name} is not a safetensors file (header length {length}; at most "
                f"{MAX_SAFETENSORS_HEADER // 2**20} MiB)",
            )
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError, RecursionError):
            header = None
        handle.seek(0, io.SEEK_END)
        data_bytes = handle.tell() - 8 - length
    if not isinstance(header, dict):
        raise InputError(field, f"{path.name} is not a safetensors file (its header is not a JSON object)")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            size = int(np.prod(info["shape"], dtype=object)) * _SAFETENSORS_ITEMSIZE[info["dtype"]]
            fits = 0 <= start <= end <= data_bytes and end - start == size
        except (KeyError, TypeError, ValueError):
            fits = False
        if not fits:
            raise InputError(
                field,
                f"{path.name}: tensor {str(name)[:80]!r} does not match its bytes (shape, dtype or offsets); the file "
                "is damaged or forged",
            )


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
