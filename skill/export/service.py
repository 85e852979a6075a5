"""export_recipe: pick the engine, prepare the output folder, let the engine write, describe the result.

Contract with every engine: `write(request, out_dir)` returns the files written, and config.yaml in out_dir
holds {section: {name: {value, why, evidence}}} plus an optional `notes` list; the response is read back from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from skill.errors import InputError
from skill.export import engine_module
from skill.export.request import ExportRequest, ExportResponse, ExportSetting

MARKER = ".kd-export"  # marks a folder this tool wrote, so a second export may rewrite it (and nothing else)


def prepare_output_dir(raw: str | None, engine: str) -> Path:
    """A new or empty folder, or one an earlier export wrote; never a folder holding someone else's files."""
    folder = Path(raw or f"kd_exports/{engine}").expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise InputError("output_dir", f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER).is_file():
        raise InputError(
            "output_dir", f"{folder} is not empty and was not written by kd_export_recipe; give a new folder"
        )
    if folder.is_dir() and any(p.is_symlink() for p in folder.rglob("*")):
        raise InputError(
            "output_dir", f"{folder} holds a symbolic link; a rewrite could land outside it, so give a new folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _validate_options(module: Any, request: ExportRequest) -> None:
    """Engine-specific settings go through the engine's own model, errors named engine_options.<field>."""
    options_model = getattr(module, "Options", None)
    if options_model is None or request.engine_options is None:
        return
    from pydantic import ValidationError

    from skill.errors import describe_validation_error

    try:
        options_model.model_validate(request.engine_options)
    except ValidationError as exc:
        raise InputError("engine_options", describe_validation_error(exc)) from exc


def _read_back(out_dir: Path) -> tuple[list[ExportSetting], list[str]]:
    import yaml

    data = yaml.safe_load((out_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    settings = [
        ExportSetting(
            name=f"{section}.{name}", value=leaf.get("value"), why=leaf.get("why", ""), evidence=leaf.get("evidence")
        )
        for section, entries in data.items()
        if isinstance(entries, dict)
        for name, leaf in entries.items()
        if isinstance(leaf, dict)
    ]
    return settings, [str(n) for n in data.get("notes") or []]


def _write(module: Any, request: ExportRequest, out_dir: Path) -> tuple[list[str], list[ExportSetting], list[str]]:
    """Let the engine write into out_dir; the files (relative), settings and notes it wrote."""
    (out_dir / MARKER).write_text(f"engine: {request.engine}\n", encoding="utf-8")
    files = sorted(str(Path(f).relative_to(out_dir)) for f in module.write(request, out_dir))
    return (files, *_read_back(out_dir))


def _write_under(
    module: Any, request: ExportRequest, output_root: Path
) -> tuple[Path, list[str], list[ExportSetting], list[str]]:
    """Open output_dir under the root once (no symlink followed), stage the recipe privately, copy it in by
    descriptor."""
    import tempfile

    from skill.export.folder import check_folder, copy_into
    from skill.paths import open_output_dir

    output_root.mkdir(parents=True, exist_ok=True)  # the operator's folder, named at start: made if missing, as before
    opened = open_output_dir(request.output_dir or f"kd_exports/{request.engine}", output_root, "output_dir")
    try:
        check_folder(opened.fd, opened.shown, MARKER)
        with tempfile.TemporaryDirectory(prefix="kd-export-") as staging:
            written = _write(module, request, Path(staging))
            copy_into(Path(staging), opened.fd)
    finally:
        os.close(opened.fd)
    return (Path(opened.shown), *written)


def export_recipe(request: ExportRequest, output_root: Path | None = None) -> ExportResponse:
    """With `output_root` (the MCP server), output_dir is opened under it race-free and written through descriptors."""
    module = engine_module(request.engine)
    _validate_options(module, request)
    if hasattr(module, "check"):
        module.check(request)  # refuse bad input before touching the disk
    try:
        if output_root is None:
            out_dir = prepare_output_dir(request.output_dir, request.engine)
            files, settings, notes = _write(module, request, out_dir)
        else:
            out_dir, files, settings, notes = _write_under(module, request, output_root)
    except OSError as exc:  # a read-only disk, a full disk, a name the file system refuses
        raise InputError("output_dir", f"cannot write the recipe: {exc.strerror or type(exc).__name__}") from exc
    commands = module.commands(out_dir) if hasattr(module, "commands") else {}
    return ExportResponse(
        engine=request.engine,
        output_dir=str(out_dir),
        files=files,
        settings=settings,
        commands=commands,
        warnings=notes,
        next_steps=getattr(module, "NEXT_STEPS", None)
        or [
            "Run the 2-process CPU command first: it proves the recipe on this machine in seconds to minutes.",
            "Then launch the GPU command on the real data; compare metrics.json with the quick distill's numbers.",
            "Check the trained student before release: kd-skill release-check RUN_DIR (kd_release_check) on the run's "
            "output folder gives the diagnosis, the gates and ship / ship with conditions / do not ship.",
        ],
    )
