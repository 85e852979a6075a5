"""config.yaml -> the typed Config of train.py: read once, every value cast to its field's type, a typo refused."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, TypeVar

from kd_recipe import RecipeError

SECTIONS_NOT_READ = ("evidence", "release", "notes")  # for people and for the release check, not for training
C = TypeVar("C")


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
