"""Export a distillation plan as a full-scale training recipe for an existing engine.

The engine registry is a plain name -> module dict (no torch, no import at registration). Each engine
module exposes:

- ``write(request, out_dir) -> list[Path]``: write the recipe folder, return the files written;
- optionally ``Options``: a pydantic model validating ``request.engine_options`` (engine-specific settings);
- optionally ``check(request) -> None``: export-time checks that raise ``skill.errors.InputError``
  (called before the output folder is touched, so bad input writes nothing);
- optionally ``commands(out_dir) -> dict[str, str]``: how to launch the recipe, shown in the response.

``write`` must leave ``config.yaml`` in out_dir as ``{section: {name: {value, why, evidence}}}`` plus an optional
``notes`` list: the response's settings and warnings are read back from it. ``skill.export.plan`` resolves
request > report > default with evidence for any engine (``Plan.add``, ``read_report``).

Adding an engine is one line here and one module beside this file; the request's ``engine`` enum follows
this dict (regenerate mcp_server/tools.json afterwards).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where they are used: the registry stays free of pydantic models at import
    from pathlib import Path

    from skill.export.request import ExportRequest, ExportResponse

ENGINES: dict[str, str] = {
    "torchrun": "skill.export.torchrun",  # PyTorch DDP launched by torchrun: vision / tabular classification
    "trl": "skill.export.trl",  # Hugging Face TRL (GKDTrainer / SFTTrainer) on Accelerate: language models
}


def engine_module(name: str) -> ModuleType:
    """The engine's module; an unknown name's error lists the valid ones."""
    from skill.errors import InputError

    if name not in ENGINES:
        raise InputError("engine", f"{name!r} is not an engine; valid engines: {', '.join(sorted(ENGINES))}")
    return importlib.import_module(ENGINES[name])


def export_recipe(request: ExportRequest, output_root: Path | None = None) -> ExportResponse:
    """Validate the request against its engine, write the folder, and describe what was written; with `output_root`
    the folder must lie under it and is written through descriptors (the MCP server)."""
    from skill.export.service import export_recipe as _export

    return _export(request, output_root)
