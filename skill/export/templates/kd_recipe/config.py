"""config.yaml and the flags -> the typed Config of train.py: read once, every value cast to its field's type, a typo
refused."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kd_recipe import RecipeError

SECTIONS_NOT_READ = ("evidence", "release", "notes")  # for people and for the release check, not for training
C = TypeVar("C")


@dataclass(frozen=True)
class Config:
    """Every setting train.py reads, typed. config.yaml holds `section.name` -> {value, why, evidence}; each field
    here is `section_name`. The defaults only serve folders exported before a setting existed."""

    data_source: str = "data/digits.npz"
    data_label_column: str | None = None
    data_num_classes: int | None = None  # null: read from the training labels
    data_test_fraction: float = 0.25  # held-out share when a CSV has no split
    data_groups: str | None = None  # a .npz array / .csv column of test-row groups, for the bias check
    teacher_model: str = "mlp"
    teacher_hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    teacher_weights: str | None = None  # null: a runner-net teacher is trained here first
    teacher_epochs: int = 30
    student_model: str = "mlp"
    student_hidden: list[int] = dataclasses.field(default_factory=lambda: [32])
    distill_method: str = "response"
    distill_response_loss: str = "kd"
    distill_relation_loss: str = "sp"
    distill_topology: str = "teacher_student"
    distill_temperature: float = 4.0
    distill_kd_loss_weight: float = 0.5
    distill_dkd_alpha: float = 1.0
    distill_dkd_beta: float = 8.0
    distill_sp_weight: float = 1.0
    distill_rkd_distance_weight: float = 1.0
    distill_rkd_angle_weight: float = 2.0
    distill_hint_loss_weight: float = 1.0
    distill_cascade_threshold: float | None = None  # serving only: the student trains as response KD
    distill_teacher_cache: bool = False
    train_epochs: int = 120
    train_global_batch_size: int = 64  # over all processes and accumulation steps: the same path for 1 or N
    train_accumulation_steps: int = 1
    train_learning_rate: float = 3e-3
    train_seed: int = 0
    train_amp: str = "auto"
    train_baseline: bool = False
    train_workers: int = 0
    train_student_sizes: list[int] | None = None  # extra student widths for the capacity curve
    eval_ece_bins: int = 15
    eval_max_prediction_rows: int = 20000  # test rows of probabilities kept in predictions.npz
    eval_max_prediction_values: int = 400000  # rows x classes x 2 models: what the release check reads in one call
    eval_throughput_batch: int = 256


def parse_args(argv: list[str] | None, description: str, here: Path) -> argparse.Namespace:
    """train.py's flags: --config (config.yaml beside train.py) and the few settings a run may override."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", type=Path, default=here / "config.yaml")
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="Where checkpoints, the student, metrics.json and the evidence go (default: run/ here)",
    )
    p.add_argument("--epochs", type=int, default=None, help="Student epochs (overrides train.epochs)")
    p.add_argument("--teacher-epochs", type=int, default=None, help="Epochs when the teacher is trained here first")
    p.add_argument("--accumulation-steps", type=int, default=None, help="Micro-batches per optimizer step")
    p.add_argument("--baseline", action="store_true", default=None, help="Also train a from-scratch student")
    p.add_argument(
        "--student-sizes",
        default=None,
        metavar="W1,W2",
        help="Also distil students of these first-layer widths (same settings) for the capacity curve",
    )
    p.add_argument("--no-resume", action="store_true", help="Ignore existing checkpoints and start over")
    p.add_argument("--cpu", action="store_true", help="Stay on the CPU (gloo) even when GPUs are present")
    return p.parse_args(argv)


def parse_sizes(value: str | None) -> list[int] | None:
    """--student-sizes 8,16 as widths (None when the flag is not given)."""
    if value is None:
        return None
    try:
        return [int(w) for w in str(value).split(",") if w.strip()]
    except ValueError:
        raise RecipeError("--student-sizes", f"{value!r} is not a list of widths like 8,16") from None


def settings(args: argparse.Namespace) -> Config:
    """The settings, read once: config.yaml, then the flags given on the command line (they win)."""
    flags = {
        "train_epochs": args.epochs,
        "teacher_epochs": args.teacher_epochs,
        "train_baseline": args.baseline,
        "train_accumulation_steps": args.accumulation_steps,
        "train_student_sizes": parse_sizes(args.student_sizes),
    }
    return load_config(Config, args.config, flags)


def _typed(name: str, value: Any, kind: Any) -> Any:
    """Cast one config value to its field's type; one line naming the setting when it does not fit."""
    optional = type(None) in typing.get_args(kind)  # `int | None`
    if value is None:
        if optional:
            return None
        raise RecipeError(name, "is null but needs a value")
    base = next(a for a in typing.get_args(kind) if a is not type(None)) if optional else kind
    try:
        if typing.get_origin(base) is list:
            return [int(v) for v in value]
        if base is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{value!r} is not true or false")
            return value
        return base(value)
    except (TypeError, ValueError) as exc:
        raise RecipeError(name, f"{value!r} does not fit ({exc})") from exc


def load_config(config_class: type[C], path: Path, overrides: dict[str, Any]) -> C:
    """config.yaml holds `section.name` -> {value, why, evidence}; field `section_name` of `config_class` gets the
    value. Flags in `overrides` (field name -> value, None: not given) win over the file."""
    import yaml

    if not path.is_file():
        raise RecipeError("--config", f"{path} does not exist")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    hints = typing.get_type_hints(config_class)
    values: dict[str, Any] = {}
    for section, entries in raw.items():
        if section in SECTIONS_NOT_READ or not isinstance(entries, dict):
            continue
        for name, leaf in entries.items():
            field = f"{section}_{name}"
            if field not in hints:  # a typo in config.yaml would otherwise be ignored silently
                raise RecipeError(
                    f"{section}.{name}", f"is not a setting train.py knows; known: {', '.join(sorted(hints))}"
                )
            value = leaf["value"] if isinstance(leaf, dict) and "value" in leaf else leaf
            values[field] = _typed(f"{section}.{name}", value, hints[field])
    values.update({k: _typed(k, v, hints[k]) for k, v in overrides.items() if v is not None})
    return config_class(**values)


def recorded_plan(path: Path) -> dict[str, Any]:
    """What the release check needs from the plan, read from config.yaml when the run starts and written into
    evidence.json: a re-export after the run, or a run folder moved away from its config, cannot change it."""
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}

    def leaf(section: str, name: str) -> dict[str, Any]:
        entry = (raw.get(section) or {}).get(name) if isinstance(raw.get(section), dict) else None
        return entry if isinstance(entry, dict) else {}

    temperature, alpha = leaf("distill", "temperature"), leaf("release", "alpha")
    plan = {
        "temperature_evidence": temperature.get("evidence"),
        "topology": leaf("distill", "topology").get("value"),
        "alpha": alpha.get("value"),
        "alpha_evidence": alpha.get("evidence"),
        "alpha_reason": leaf("release", "alpha_reason").get("value"),
        "config": str(path.name),
    }
    return {
        key: (value[:300] if isinstance(value, str) and key != "alpha_reason" else value)
        for key, value in plan.items()
        if value is not None
    }
