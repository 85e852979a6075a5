"""Input files the MCP server opened for one export (race-free, by descriptor), found by the path the request carries.

The server opens data, teacher_weights and from_report under its roots with O_NOFOLLOW and puts the descriptors
here for the call; the export's readers ask `open_binary` instead of opening the path, so a file swapped for a
symlink after the check cannot make the export read (and echo in an error) a file outside the roots.
Context-local: concurrent exports in the server's threads each see their own. The CLI registers nothing and
reads the user's own paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

_OPENED: ContextVar[dict[str, int] | None] = ContextVar("kd_export_opened", default=None)


@contextmanager
def opened_files(files: dict[str, int]) -> Iterator[None]:
    token = _OPENED.set(files)
    try:
        yield
    finally:
        _OPENED.reset(token)


def _fd(path: str | Path) -> int | None:
    return (_OPENED.get() or {}).get(str(path))


def local_path(source: str) -> Path:
    """The path to read: as given when the server opened it (never re-resolved), else resolved like any user path."""
    return Path(source) if _fd(source) is not None else Path(source).expanduser().resolve()


def is_file(path: Path) -> bool:
    return _fd(path) is not None or path.is_file()


def size_of(path: Path) -> int:
    fd = _fd(path)
    return os.fstat(fd).st_size if fd is not None else path.stat().st_size


def open_binary(path: Path) -> BinaryIO:
    """A handle from the start of the file: a duplicate of the server's descriptor, else the path opened."""
    fd = _fd(path)
    if fd is None:
        return path.open("rb")
    copy = os.dup(fd)
    os.lseek(copy, 0, os.SEEK_SET)
    return os.fdopen(copy, "rb")
