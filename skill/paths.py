"""Confine user-supplied paths to an allowed root, race-free: resolve once, then open from directory descriptors.

A path is checked by name (no '..', no NUL), resolved once (symlinks inside the root are fine), and then opened
component by component from a descriptor of the root with O_NOFOLLOW. Whatever is swapped in after the check
(a folder replaced by a symlink) makes the open fail instead of redirecting it. Callers get descriptors, never
a path to re-open. Messages name the user's input and the root, never where a symlink points.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from skill.errors import InputError

MAX_TEACHER_BYTES = 2 * 1024**3
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted under the root must not block the server
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass
class Opened:
    """An open descriptor and the path shown to the user (inside the root)."""

    fd: int
    shown: str


def refuse_control_characters(raw: str, field: str) -> None:
    """A path with a line break or another control character is refused: echoed into a launch command or a README it
    would start a new line (issue 22: an output folder 'x\ntouch marker' came back as a runnable command)."""
    if "\x00" in raw:
        raise InputError(field, "contains a NUL byte")
    bad = next((ch for ch in raw if ch in "\u2028\u2029\x85" or ord(ch) < 32 or 127 <= ord(ch) < 160), None)
    if bad is not None:
        raise InputError(
            field, f"contains a line break or control character (U+{ord(bad):04X}); give a path without them"
        )


def _inside(raw: str, root: Path, field: str) -> tuple[Path, list[str]]:
    """The resolved root and the parts of `raw` below it, refusing anything that lands outside."""
    refuse_control_characters(raw, field)
    if not raw.strip():
        raise InputError(field, "is empty; give a path inside the allowed root")
    candidate = Path(raw)
    if ".." in candidate.parts:
        raise InputError(field, f"{raw!r} contains '..'; give a path inside {root}")
    root = root.resolve()
    resolved = Path(os.path.realpath(candidate if candidate.is_absolute() else root / candidate))
    if not resolved.is_relative_to(root):
        raise InputError(
            field,
            f"{raw!r} lies outside the allowed root {root} (or links out of it); widen it with --data-root / "
            "--output-root",
        )
    return root, list(resolved.relative_to(root).parts)


def _open_dir(name: str, parent: int, raw: str, field: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(name) from exc
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InputError(
                field,
                f"{raw!r}: {name!r} is not a folder (or was replaced by a link while opening); give a real folder",
            ) from exc
        raise InputError(field, f"{raw!r}: cannot open {name!r} ({os.strerror(exc.errno or 0)})") from exc


def _walk(root: Path, parts: list[str], raw: str, field: str, *, create: bool) -> int:
    """A descriptor of root/parts[0]/.../parts[-1], every step without following links; folders made when `create`."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise InputError(
            field,
            f"the server's allowed root {root} cannot be opened ({os.strerror(exc.errno or 0)}); "
            "start it with an existing --data-root / --output-root",
        ) from None
    try:
        for name in parts:
            try:
                child = _open_dir(name, fd, raw, field)
            except FileNotFoundError:
                if not create:
                    raise InputError(field, f"{raw!r} is not a file under {root}") from None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
                child = _open_dir(name, fd, raw, field)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_input(raw: str, root: Path, field: str, *, max_bytes: int | None = None) -> Opened:
    """Open a regular file under `root` for reading; a FIFO, a device or a swapped-in link is refused."""
    root, parts = _inside(raw, root, field)
    if not parts:
        raise InputError(field, f"{raw!r} is the root folder itself, not a file")
    parent = _walk(root, parts[:-1], raw, field, create=False)
    try:
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise InputError(field, f"{raw!r} is not a file under {root}") from None
    except OSError as exc:
        raise InputError(field, f"{raw!r} is not a regular file under {root} ({os.strerror(exc.errno or 0)})") from exc
    finally:
        os.close(parent)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InputError(field, f"{raw!r} is not a regular file (a folder, FIFO or device)")
    if max_bytes is not None and info.st_size > max_bytes:
        os.close(fd)
        raise InputError(field, f"{raw!r} is {info.st_size / 2**20:.0f} MiB; at most {max_bytes // 2**20} MiB")
    os.set_blocking(fd, True)
    return Opened(fd, str(root.joinpath(*parts)))


def open_output_dir(raw: str, root: Path, field: str) -> Opened:
    """Open (creating what is missing) a folder under `root` for writing.

    A file in the way is refused now, not after training.
    """
    root, parts = _inside(raw, root, field)
    return Opened(_walk(root, parts, raw, field, create=True), str(root.joinpath(*parts)))


def confine(raw: str, root: Path, field: str, *, must_exist: bool) -> Path:
    """The checked path by name only (for front ends that then hand it to their own user's process, like the CLI)."""
    root, parts = _inside(raw, root, field)
    resolved = root.joinpath(*parts)
    if must_exist and not resolved.is_file():
        raise InputError(field, f"{raw!r} is not a file under {root}")
    return resolved


def confine_dir(raw: str, root: Path, field: str) -> Path:
    """A folder inside `root`, by name (for model folders a recipe names but the server never reads). Anything outside
    gets the same answer whether it exists or not, so an answer never tells what lies outside the root."""
    root, parts = _inside(raw, root, field)
    resolved = root.joinpath(*parts)
    if not resolved.is_dir():
        raise InputError(
            field, f"{raw!r} is not a folder under {root}; give a Hugging Face model folder there or a hub id"
        )
    return resolved


def write_file_at(folder_fd: int, name: str, data: bytes) -> None:
    """Write `name` inside an open folder atomically: a fresh temporary file (never following a link), then a rename,
    both relative to the descriptor, so a folder swapped for a symlink meanwhile cannot redirect the write."""
    import uuid

    temporary = f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=folder_fd
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=folder_fd)
        raise
