"""An export for a server: each input opened once under its root (race-free), the recipe written under the output root.

Data and teacher weights lie under the data root, a quick distill's report under the output root (where quick distills
write) or the data root, TRL model folders under the data root. The request then names the files by their shown paths
and the export reads the descriptors (`skill.export.opened`), so a file swapped for a symlink after the check is never
read. The CLI does not use this: it reads the user's own paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from skill.errors import InputError
from skill.export.request import ExportRequest, ExportResponse, is_import_path


def _open_inputs(request: ExportRequest, data_root: Path, output_root: Path) -> tuple[ExportRequest, dict[str, int]]:
    """The request naming its opened files by their shown paths, and those files' descriptors."""
    from skill.paths import MAX_TEACHER_BYTES, open_input

    update: dict[str, Any] = {}
    files: dict[str, int] = {}

    def take(field: str, root: Path, max_bytes: int | None = None) -> None:
        opened = open_input(getattr(request, field), root, field, max_bytes=max_bytes)
        update[field] = opened.shown
        files[opened.shown] = opened.fd

    try:
        data = request.data or "digits"
        factory = is_import_path(data) and not data.endswith((".npz", ".csv"))  # a Dataset factory: nothing to open
        if data != "digits" and not factory:
            take("data", data_root)
        if request.teacher_weights:
            take("teacher_weights", data_root, MAX_TEACHER_BYTES)
        if request.from_report:
            try:
                take("from_report", output_root)
            except InputError:
                take("from_report", data_root)
    except BaseException:
        for fd in files.values():
            os.close(fd)
        raise
    return request.model_copy(update=update), files


def export_confined(request: ExportRequest, data_root: Path, output_root: Path) -> ExportResponse:
    """export_recipe with reads and writes confined to the two roots; any failure is an InputError naming a field."""
    from skill.export import export_recipe
    from skill.export.opened import opened_files
    from skill.export.trl import models_confined_to

    files: dict[str, int] = {}
    try:
        confined, files = _open_inputs(request, data_root, output_root)
        with opened_files(files), models_confined_to(data_root):
            return export_recipe(confined, output_root=output_root)
    except OSError as exc:  # the strerror only: the server's paths stay private
        raise InputError("output_dir", f"cannot write the recipe: {exc.strerror or type(exc).__name__}") from None
    finally:
        for fd in files.values():
            os.close(fd)
