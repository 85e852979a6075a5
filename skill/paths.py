"""Confine user-supplied paths to an allowed root: no '..', no absolute path outside, no symlink escape."""

from __future__ import annotations

from pathlib import Path

from skill.errors import InputError

MAX_TEACHER_BYTES = 2 * 1024**3


def confine(raw: str, root: Path, field: str, *, must_exist: bool) -> Path:
    """Resolve `raw` (relative paths are taken from `root`) and refuse anything that lands outside `root`."""
    if "\x00" in raw:
        raise InputError(field, "contains a NUL byte")
    candidate = Path(raw)
    if ".." in candidate.parts:
        raise InputError(field, f"{raw!r} contains '..'; give a path inside {root}")
    root = root.resolve()
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()  # follows symlinks
    if not resolved.is_relative_to(root):
        raise InputError(field, f"{raw!r} resolves to {resolved}, outside the allowed root {root}; widen it with --data-root / --output-root")
    if must_exist and not resolved.is_file():
        raise InputError(field, f"{raw!r} is not a file under {root}")
    return resolved
