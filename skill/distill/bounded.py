"""Bounded readers for user files: a small archive cannot decompress into gigabytes, a CSV cannot flood memory or
time.

.npz: only the expected members are read; the entry count comes from the end-of-central-directory record before
the archive is parsed, and each array's size from its .npy header before a byte is decompressed; then exactly
that many bytes are read (a lying zip header cannot make it read more). No pickle, ever.
.csv: streamed row by row into float32 chunks with caps on bytes, rows, columns and fields; labels go through a
dict (first seen -> id), refused as soon as there are too many distinct ones. The loading guard is checked as it
goes.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, cast

import numpy as np

from skill.distill import sources
from skill.errors import InputError

if TYPE_CHECKING:
    from _csv import Reader

MAX_ROWS = 200_000
MAX_FEATURES = 10_000
MAX_CLASSES = 1000
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_DECODED_BYTES = 1024 * 1024 * 1024  # all arrays of one archive together, once decompressed
MAX_CSV_VALUES = 50_000_000  # rows x columns: 200 MB as float32
MAX_FIELD_CHARS = 1000
MAX_ZIP_ENTRIES = 64
_CHUNK = 16 * 1024 * 1024
_NUMERIC = "biuf"


@dataclass(frozen=True)
class Member:
    """An array the reader may load: at most `rows` rows of at most `width` values, of these dtype kinds."""

    rows: int
    width: int
    kinds: str = _NUMERIC
    required: bool = False


DATASET_MEMBERS = {
    "X_train": Member(MAX_ROWS, MAX_FEATURES, required=True),
    "y_train": Member(MAX_ROWS, 1, required=True),
    "X_test": Member(MAX_ROWS, MAX_FEATURES, required=True),
    "y_test": Member(MAX_ROWS, 1, required=True),
    "X_unlabeled": Member(MAX_ROWS, MAX_FEATURES),
    "groups_test": Member(MAX_ROWS, 1, kinds=_NUMERIC + "US"),
}
LOGIT_MEMBERS = {
    "logits_train": Member(MAX_ROWS, MAX_CLASSES, required=True),
    "logits_test": Member(MAX_ROWS, MAX_CLASSES, required=True),
    "logits_val": Member(MAX_ROWS, MAX_CLASSES),
    "logits_unlabeled": Member(MAX_ROWS, MAX_CLASSES),
}


def zip_entry_count(handle: BinaryIO) -> int:
    """Entries declared by the end-of-central-directory record (zip64 aware), read before zipfile parses the
    directory."""
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    tail_len = min(size, 22 + 65535)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise zipfile.BadZipFile("no end-of-central-directory record")
    count = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    if count == 0xFFFF:
        at64 = tail.rfind(b"PK\x06\x06", 0, at)
        if at64 < 0 or at64 + 40 > len(tail):
            raise zipfile.BadZipFile("zip64 record missing")
        count = struct.unpack("<Q", tail[at64 + 32 : at64 + 40])[0]
    handle.seek(0)
    return count


def _read_member(
    archive: zipfile.ZipFile, key: str, spec: Member, source: str, field: str, budget: list[int]
) -> np.ndarray:
    info = archive.getinfo(f"{key}.npy")
    # typeshed types ZipFile.open as IO[bytes]; in read mode it returns a ZipExtFile, which has readinto
    with cast(zipfile.ZipExtFile, archive.open(info)) as member:
        try:
            version = np.lib.format.read_magic(member)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(member)
        except ValueError as exc:
            raise InputError(field, f"{source}: {key} is not a plain .npy array ({exc})") from exc
        if dtype.hasobject:
            raise InputError(
                field,
                f"{source}: {key} holds Python objects; they need pickle, which is refused: save plain numeric arrays",
            )
        if dtype.kind not in spec.kinds:
            accepted = "integers or floats" + (" or strings" if "U" in spec.kinds else "")
            raise InputError(field, f"{source}: {key} has dtype {dtype}; accepted: {accepted}")
        rows = shape[0] if shape else 1
        width = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        if rows > spec.rows or width > spec.width:
            raise InputError(
                field, f"{source}: {key} declares shape {shape}; at most {spec.rows} rows of {spec.width} values"
            )
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > budget[0]:
            raise InputError(
                field,
                f"{source}: {key} would decompress to {nbytes / 2**20:.0f} MiB; the archive's arrays may take "
                f"{MAX_DECODED_BYTES // 2**20} MiB in all",
            )
        budget[0] -= nbytes
        buffer = bytearray(nbytes)
        view, filled = memoryview(buffer), 0
        while filled < nbytes:
            sources.checkpoint()
            got = member.readinto(view[filled : filled + _CHUNK])
            if not got:
                raise InputError(field, f"{source}: {key} is truncated ({filled} of {nbytes} bytes)")
            filled += got
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def read_npz_members(handle: BinaryIO, source: str, field: str, members: dict[str, Member]) -> dict[str, np.ndarray]:
    """The listed arrays of an .npz (missing optional ones skipped), every other member left compressed and unread."""
    try:
        if zip_entry_count(handle) > MAX_ZIP_ENTRIES:
            raise InputError(
                field, f"{source} has more than {MAX_ZIP_ENTRIES} entries; an .npz here holds a few arrays"
            )
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, struct.error) as exc:
        raise InputError(field, f"{source} is not a readable .npz archive ({exc})") from exc
    with archive:
        present = {name[:-4] for name in archive.namelist() if name.endswith(".npy")}
        missing = [k for k, spec in members.items() if spec.required and k not in present]
        if missing:
            raise InputError(
                field, f"{source} lacks {', '.join(missing)}; it holds {', '.join(sorted(present)[:10]) or 'nothing'}"
            )
        budget = [MAX_DECODED_BYTES]
        try:
            return {
                k: _read_member(archive, k, spec, source, field, budget) for k, spec in members.items() if k in present
            }
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:  # bad CRC, unsupported compression
            raise InputError(field, f"{source} is not a readable .npz archive ({exc})") from exc


_INTEGER = re.compile(r"-?[0-9]+")


def _label_order(label: str) -> tuple[bool, int, str]:
    """Integer labels first in numeric order, then the rest alphabetically (ASCII digits only: '²' is text)."""
    numeric = _INTEGER.fullmatch(label) is not None
    return (not numeric, int(label) if numeric else 0, label)


def _read_header(reader: Reader, source: str, label_column: str | None) -> tuple[list[str], int]:
    """The header row and the label column's index: checked before a data row is read, so a wrong file fails fast."""
    try:
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError("dataset", f"{source} is not a readable UTF-8 CSV file: {str(exc)[:120]}") from exc
    if not header:
        raise InputError("dataset", f"{source} needs a header row and at least two rows")
    if len(header) > MAX_FEATURES + 1:
        raise InputError("dataset", f"{source} has {len(header)} columns; at most {MAX_FEATURES + 1}")
    column = label_column if label_column is not None else header[-1]
    if column not in header:
        raise InputError("label_column", f"{column!r} is not a column of {source}; columns: {', '.join(header[:20])}")
    return header, header.index(column)


def _label_id(value: str, column: str, source: str, line: int, labels: dict[str, int]) -> int:
    """The id of one row's label (first seen -> next id), refused as soon as there are too many distinct labels."""
    label = value.strip()
    if not label:
        raise InputError("dataset", f"{source} line {line}: the label column {column!r} is empty")
    ident = labels.setdefault(label, len(labels))
    if len(labels) > MAX_CLASSES:
        raise InputError(
            "dataset",
            f"{source}: the label column {column!r} has more than {MAX_CLASSES} distinct values by line {line}; "
            "is it the right column (label_column)?",
        )
    return ident


def _features(row: list[str], j: int, header: list[str], source: str, line: int) -> list[float]:
    """One row's feature values (every column but the label's); a non-numeric field is named by line and column."""
    try:
        return [float(v) for i, v in enumerate(row) if i != j]
    except ValueError:
        bad = next(i for i, v in enumerate(row) if i != j and not _is_float(v))
        raise InputError(
            "dataset",
            f"{source} line {line}, column {header[bad]!r}: {row[bad][:40]!r} is not a number; "
            "every feature column must be numeric",
        ) from None


def _read_rows(
    reader: Reader, header: list[str], j: int, source: str
) -> tuple[list[np.ndarray], list[int], dict[str, int]]:
    """The data rows as float32 chunks, their label ids and the label -> id map, within the row and value caps."""
    width = len(header)
    max_rows = min(MAX_ROWS, MAX_CSV_VALUES // width)
    labels: dict[str, int] = {}
    chunks: list[np.ndarray] = []
    rows: list[list[float]] = []
    ids: list[int] = []
    for row in reader:
        if not row:
            continue
        line = reader.line_num
        if len(row) != width:
            raise InputError("dataset", f"{source} line {line} has {len(row)} fields; the header has {width}")
        if len(ids) >= max_rows:
            raise InputError(
                "dataset", f"{source} has more than {max_rows} rows; at most {max_rows} with {width} columns"
            )
        ids.append(_label_id(row[j], header[j], source, line, labels))
        rows.append(_features(row, j, header, source, line))
        if len(rows) * width >= 1_000_000:  # about 4 MB per float32 chunk; Python floats never pile up
            chunks.append(np.asarray(rows, dtype=np.float32))
            rows = []
            sources.checkpoint()
    if rows:
        chunks.append(np.asarray(rows, dtype=np.float32))
    return chunks, ids, labels


def read_csv_bounded(handle: BinaryIO, source: str, label_column: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32) and label ids of a CSV with a header row; one pass, bounded memory and time."""
    # -sig: a BOM is not part of the first column's name
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        reader = csv.reader(text)
        header, j = _read_header(reader, source, label_column)
        try:
            chunks, ids, labels = _read_rows(reader, header, j, source)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError("dataset", f"{source} is not a readable UTF-8 CSV file: {str(exc)[:120]}") from exc
    finally:
        csv.field_size_limit(previous_limit)
        text.detach()
    if len(ids) < 2:
        raise InputError("dataset", f"{source} needs a header row and at least two rows")
    order = sorted(labels, key=_label_order)
    remap = np.empty(len(labels), dtype=np.int64)
    remap[[labels[name] for name in order]] = np.arange(len(order))
    return np.concatenate(chunks), remap[np.asarray(ids, dtype=np.int64)]


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
