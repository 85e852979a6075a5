"""Where the runner's files come from: descriptors the server opened (race-free), or plain paths (the CLI user's
own files).

The MCP server resolves every path once and hands the worker open descriptors; the worker registers them here
under the path shown to the user, and the loaders ask `open_binary` / `output_dir_fd` instead of re-opening a
path that may have been swapped since. A loading guard lets long loads honour the time budget.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable
from typing import BinaryIO

from skill.errors import InputError

TORCHSCRIPT_REFUSED = (
    "TorchScript is a program (it can read and write files and run forever), so this server does not run it; "
    "give precomputed logits (.npz: logits_train, logits_test) or safetensors weights of the runner's own net, "
    "or start the server with --allow-torchscript if you trust the file"
)
SAFE_TEACHER_SUFFIXES = (".npz", ".safetensors")

_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/[^\s'\",:;<>]+")

_FILES: dict[str, int] = {}
_DIRS: dict[str, int] = {}
_guard: Callable[[], None] | None = None


class LoadStopped(Exception):
    """Loading ran past the time budget or was cancelled."""


def register_file(shown: str, fd: int) -> None:
    _FILES[shown] = fd


def register_output_dir(shown: str, fd: int) -> None:
    _DIRS[shown] = fd


def output_dir_fd(shown: str | None) -> int | None:
    return _DIRS.get(shown) if shown else None


def install_guard(deadline: float, stop: Callable[[], bool] = lambda: False) -> None:
    """Make `checkpoint` raise once `deadline` (time.monotonic) passes or `stop()` is true."""
    global _guard

    def check() -> None:
        if stop():
            raise LoadStopped("cancelled while loading")
        if time.monotonic() > deadline:
            raise LoadStopped(
                "the time budget ran out while loading the data; raise time_budget_s or use a smaller file"
            )

    _guard = check


def checkpoint() -> None:
    """Called by loaders every few thousand rows or megabytes."""
    if _guard is not None:
        _guard()


def open_binary(shown: str, field: str) -> BinaryIO:
    """A fresh binary handle on the registered descriptor (from its start), else on the path; only regular files."""
    if shown in _FILES:
        fd = os.dup(_FILES[shown])
        os.lseek(fd, 0, os.SEEK_SET)
    else:
        try:
            fd = os.open(shown, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise InputError(field, f"{shown!r} cannot be opened ({os.strerror(exc.errno or 0)})") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InputError(field, f"{shown!r} is not a regular file")
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def size_of(shown: str) -> int:
    if shown in _FILES:
        return os.fstat(_FILES[shown]).st_size
    return os.stat(shown).st_size


def redact_paths(text: str) -> str:
    """Absolute paths in a message from torch or a teacher become <path>: the client learns nothing of the machine."""
    return _ABSOLUTE_PATH.sub("<path>", text)
