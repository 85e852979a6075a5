"""Write a recipe into a folder held by descriptor (the MCP server's output folder), so a swapped symlink cannot
redirect it.

The engine writes into a private staging folder; the files are then copied in through the folder's descriptor:
every step opened with O_NOFOLLOW, every file written under a fresh name and renamed over the old one (a planted
symlink or hard link is replaced, never written through). The path-based `prepare_output_dir` stays for the CLI,
whose user writes to their own disk.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from skill.errors import InputError
from skill.paths import write_file_at

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_folder(fd: int, shown: str, marker: str) -> None:
    """The folder is empty or an earlier export (marker present), and holds no symbolic link."""
    names = os.listdir(fd)
    try:
        marked = stat.S_ISREG(os.stat(marker, dir_fd=fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        marked = False
    if names and not marked:
        raise InputError(
            "output_dir", f"{shown} is not empty and was not written by kd_export_recipe; give a new folder"
        )
    for _, dirs, files, here in os.fwalk(".", dir_fd=fd):
        if any(stat.S_ISLNK(os.stat(n, dir_fd=here, follow_symlinks=False).st_mode) for n in dirs + files):
            raise InputError(
                "output_dir", f"{shown} holds a symbolic link; a rewrite could land outside it, so give a new folder"
            )


def _open_subdir(parent: int, name: str) -> int:
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


def copy_into(staging: Path, fd: int) -> None:
    """Copy every file under `staging` (the engine's private output) into the folder `fd`, race-free."""
    for source in sorted(p for p in staging.rglob("*") if p.is_file()):
        *folders, name = source.relative_to(staging).parts
        parent = os.dup(fd)
        try:
            for folder in folders:
                child = _open_subdir(parent, folder)
                os.close(parent)
                parent = child
            write_file_at(parent, name, source.read_bytes())
        finally:
            os.close(parent)
