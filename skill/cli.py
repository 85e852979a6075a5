"""`kd-skill <command>`: every library function from the shell, JSON on stdout, bad input exits 2.

Options are generated from the request models, so the CLI and the MCP tools share field names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from skill.commands import COMMANDS
from skill.errors import InputError, describe_validation_error
from skill.formatting import to_text

EXIT_BAD_INPUT = 2

Model = TypeVar("Model", bound=BaseModel)


def _is_plain_string(annotation: Any) -> bool:
    """Fields typed str (or str | None) take the raw text; everything else is parsed as JSON first."""
    args = typing.get_args(annotation)
    return annotation is str or (bool(args) and set(args) <= {str, type(None)})


def _add_model_options(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, default=None, metavar="VALUE", help=field.description
        )
    parser.add_argument(
        "--json",
        dest="_json",
        default=None,
        metavar="JSON|@FILE|-",
        help="Whole request as JSON (a string, @file, or - for stdin); flags override it",
    )


def _parse_value(raw: str, annotation: Any) -> Any:
    if _is_plain_string(annotation):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # pydantic will say what it expected


def _load_json(spec: str) -> dict[str, Any]:
    text = (
        sys.stdin.read()
        if spec == "-"
        else Path(spec[1:]).read_text(encoding="utf-8")
        if spec.startswith("@")
        else spec
    )
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError("--json", f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError("--json", "must be a JSON object of field names to values")
    return data


def request_from_args(model: type[Model], args: argparse.Namespace) -> Model:
    data = _load_json(args._json) if args._json else {}
    for name, field in model.model_fields.items():
        raw = getattr(args, name)
        if raw is not None:
            data[name] = _parse_value(raw, field.annotation)
    from skill.strict_json import bool_as_number

    flagged = bool_as_number(model, data)  # as over MCP: pydantic's lax mode would take true as 1
    if flagged:
        raise InputError(flagged, "true/false is not a number; give a number")
    return model.model_validate(data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kd-skill", description="Knowledge distillation advisor and quick-distill runner."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.summary, description=command.summary)
        _add_model_options(p, command.request)
        p.add_argument(
            "--format", choices=["json", "text"], default="json", help="json (default) or a readable summary"
        )
        if command.name == "release-check":  # `kd-skill release-check RUN_DIR`
            p.add_argument("run_dir_arg", nargs="?", metavar="RUN_DIR", help="The run folder (the same as --run-dir)")
    _add_distill_parser(sub)
    _add_export_parser(sub)
    return parser


def _add_export_parser(sub: Any) -> None:
    """`kd-skill export`: options from the same request model as the kd_export_recipe tool."""
    from skill.export.request import ExportRequest

    p = sub.add_parser(
        "export",
        help=(
            "Export the plan (or a quick-distill report) as a full-scale training folder (torchrun, or trl for "
            "language models)."
        ),
        description=ExportRequest.__doc__,
    )
    _add_model_options(p, ExportRequest)
    p.add_argument("--format", choices=["json", "text"], default="json")


def _add_distill_parser(sub: Any) -> None:
    """The runner's options come from its own model; imported lazily so advice never loads torch."""
    from skill.distill.config import DistillConfig

    p = sub.add_parser(
        "distill", help="Run a real small distillation (PyTorch, CPU) and report.", description=DistillConfig.__doc__
    )
    _add_model_options(p, DistillConfig)
    p.add_argument("--format", choices=["json", "text"], default="json")
    p.add_argument("--no-progress", action="store_true", help="Do not draw the progress bar on stderr")


def _fail(message: str) -> int:
    print(f"kd-skill: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    """The command, with a reader that stops early (`kd-skill ... | head`) ending it quietly, not in a traceback."""
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the Python docs' recipe: point stdout at devnull so the interpreter's final flush cannot raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "distill":
            from skill.distill.cli import run_distill_command

            response = run_distill_command(args, request_from_args)
        elif args.command == "export":
            from skill.export import export_recipe
            from skill.export.request import ExportRequest

            response = export_recipe(request_from_args(ExportRequest, args))
            if args.format == "text":
                print(response.text())
                return 0
        else:
            from skill.run_evidence import ANYWHERE, RUN_ROOT

            RUN_ROOT.set(
                ANYWHERE
            )  # from_run / release-check: the shell's user reads their own disk, relative to the cwd
            if getattr(args, "run_dir_arg", None) is not None:
                if args.run_dir is not None and args.run_dir != args.run_dir_arg:
                    raise InputError(
                        "run_dir", f"given twice ({args.run_dir_arg!r} and --run-dir {args.run_dir!r}); give it once"
                    )
                args.run_dir = args.run_dir_arg
            command = COMMANDS[args.command]
            response = command.run(request_from_args(command.request, args))
    except ValidationError as exc:
        return _fail(describe_validation_error(exc))
    except InputError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read input: {exc}")
    except ModuleNotFoundError as exc:  # `distill` without the optional extra (issue 12)
        if args.command != "distill":
            raise
        return _fail(
            f"`kd-skill distill` needs the optional [distill] packages ({exc.name} is missing): "
            "pip install 'knowledge-distillation-deep[distill]' (on Linux add --extra-index-url "
            "https://download.pytorch.org/whl/cpu for the CPU build of PyTorch)"
        )
    if args.format == "text":
        print(to_text(response))
    else:
        print(response.model_dump_json(indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
