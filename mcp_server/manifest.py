"""The tool manifest: each tool's name, title, description, annotations and JSON Schemas, generated from the
library's tool specs (`skill.tool_specs`) and stored in `tools.json`, so the server lists its tools without importing
or building a single model (the first call pays that instead). A test fails when the file is stale.

    python -m mcp_server.manifest --write    # regenerate after changing a model, a description or a rule bound
    python -m mcp_server.manifest --check    # exit 1 when tools.json is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("tools.json")


def generate() -> list[dict[str, Any]]:
    """The manifest as the models define it today."""
    from dataclasses import asdict

    from mcp.types import ToolAnnotations

    from skill.tool_specs import SPECS, Effects, request_model

    def annotations(effects: Effects) -> dict[str, Any]:
        hints = ToolAnnotations(**{f"{k}_hint": v for k, v in asdict(effects).items()})  # read_only -> read_only_hint
        return hints.model_dump(mode="json", by_alias=True, exclude_none=True)

    return [
        {
            "name": spec.name,
            "title": spec.title,
            "description": spec.description,
            "annotations": annotations(spec.effects),
            "input_schema": request_model(spec).model_json_schema(by_alias=True),
            "output_schema": spec.response.model_json_schema(by_alias=True),
        }
        for spec in SPECS
    ]


def load() -> list[dict[str, Any]]:
    return json.loads(PATH.read_text(encoding="utf-8"))


def render(manifest: list[dict[str, Any]]) -> str:
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp_server.manifest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="regenerate tools.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when tools.json is stale")
    args = parser.parse_args(argv)
    fresh = render(generate())
    if args.write:
        PATH.write_text(fresh, encoding="utf-8")
        return 0
    if PATH.read_text(encoding="utf-8") != fresh:
        print("mcp_server/tools.json is stale: run python -m mcp_server.manifest --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
