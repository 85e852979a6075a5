"""Load the YAML rule files once, validate each against its JSON Schema, and freeze them.

Rules are data so that code, SKILL.md and references/ can all be checked against one source.
Validation runs whenever the exact bytes of the rule files and schemas have not passed it before on
this machine; a passing set is remembered by its SHA-256 in a small cache folder, so later starts of
the MCP server skip importing jsonschema (about a tenth of its start-up). Set KD_RULES_CACHE=off to
validate on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from referencing import Registry

# the C-accelerated safe loader when PyYAML has it: same safety as yaml.safe_load, faster start
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

RULE_NAMES = (
    "method",
    "topology",
    "alpha",
    "score",
    "failure_modes",
    "quality_gates",
    "boundaries",
    "llm_method",
    "release",
    "runner",
)
SHARED_SCHEMAS = ("condition", "common")
LEXICON = "lexicon"  # routing's word lists, one topic per file, put into boundaries.yaml at load (see _add_lexicon)


class RuleFileError(ValueError):
    """A rule file is missing, not YAML, or breaks its schema; the message names file and path."""


def rules_dir() -> Path:
    """Folder holding the shipped rule files (works from a checkout and from an installed wheel)."""
    return Path(str(resources.files("skill.rules")))


def _freeze(value: Any) -> Any:
    """Deep-freeze parsed YAML so no caller can change a rule at run time."""
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _schema(name: str, folder: Path) -> dict[str, Any]:
    return json.loads((folder / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"))


def _registry(folder: Path, extra: tuple[str, ...] = ()) -> Registry:
    from referencing import Registry, Resource

    registry: Registry = Registry()
    for name in SHARED_SCHEMAS + extra:
        registry = registry.with_resource(f"kd://schemas/{name}", Resource.from_contents(_schema(name, folder)))
    return registry


def _read_yaml(path: Path, label: str) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise RuleFileError(f"{label}: cannot read rule file: {exc}") from exc


def _validate(data: Any, schema_name: str, label: str, folder: Path, extra: tuple[str, ...] = ()) -> None:
    """Check data against a schema; the error names the file and the JSON path of the first problem."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema(schema_name, folder), registry=_registry(folder, extra))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise RuleFileError(f"{label}: at {where}: {first.message}")


def _term_groups(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every term group of boundaries.yaml by (owner, group id): in_scope, budget, each boundary id, each sibling skill.
    Read before validation, so it skips what is malformed (the schema reports that)."""
    in_scope, budget = data.get("in_scope"), data.get("budget")
    # owner names are checked below: a malformed file may lack them or name them with a number
    owners: list[tuple[Any, Any]] = [("in_scope", in_scope.get("groups") if isinstance(in_scope, dict) else None)]
    owners.append(("budget", [budget] if isinstance(budget, dict) else None))
    owners += [(b.get("id"), b.get("groups")) for b in data.get("boundaries") or () if isinstance(b, dict)]
    owners += [(s.get("skill"), s.get("groups")) for s in data.get("siblings") or () if isinstance(s, dict)]
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for owner, listed in owners:
        for group in listed if isinstance(listed, list) else ():
            if isinstance(owner, str) and isinstance(group, dict):
                groups[(owner, str(group.get("id")))] = group
    return groups


def _add_lexicon(data: dict[str, Any], folder: Path, validate: bool) -> list[str]:
    """Put each lexicon file's word lists where boundaries.yaml's rules read them: reading/<list>, numbers/<list>, and
    each term group's patterns (terms/<owner>/<group id>). Returns the problems, each naming the file and the key: a
    list set twice, words for a group that does not exist, a group left without words (reported after the schema's
    own findings, which name their cause more precisely: a renamed sibling leaves its words unmatched)."""
    groups = _term_groups(data)
    problems = []
    for path in sorted((folder / LEXICON).glob("*.yaml")):
        label = f"{LEXICON}/{path.name}"
        words = _read_yaml(path, label)
        if validate:
            _validate(words, "lexicon", label, folder, extra=("boundaries",))
        for section in ("reading", "numbers"):
            target = data.setdefault(section, {})
            for key, value in (words.get(section) or {}).items():
                if key in target:
                    problems.append(f"{label}: at {section}/{key}: set twice (boundaries.yaml or another lexicon file)")
                target[key] = value
        for owner, by_id in (words.get("terms") or {}).items():
            for group_id, patterns in by_id.items():
                group = groups.get((owner, group_id))
                if group is None:
                    problems.append(
                        f"{label}: at terms/{owner}/{group_id}: boundaries.yaml has no such term group; "
                        f"known: {', '.join(f'{o}/{g}' for o, g in groups)}"
                    )
                elif "patterns" in group:
                    problems.append(f"{label}: at terms/{owner}/{group_id}: the group's words are set twice")
                else:
                    group["patterns"] = patterns
    bare = [f"{o}/{g}" for (o, g), group in groups.items() if "patterns" not in group]
    if bare:
        names = ", ".join(bare)
        problems.append(f"boundaries.yaml: term groups without words: {names}; list them under terms/ in {LEXICON}/")
    return problems


def load_rule_file(path: Path, schema_name: str, folder: Path | None = None, validate: bool = True) -> Any:
    """Parse one rule file with the safe YAML loader and validate it; errors name the file and the JSON path.
    boundaries.yaml is validated with its lexicon in place."""
    folder = folder or rules_dir()
    data = _read_yaml(path, path.name)
    problems = _add_lexicon(data, folder, validate) if schema_name == "boundaries" and isinstance(data, dict) else []
    if validate:
        _validate(data, schema_name, path.name, folder)
    if problems:
        raise RuleFileError(problems[0])
    return _freeze(data)


@dataclass(frozen=True)
class RuleSet:
    """All rule files, validated and frozen."""

    method: Mapping[str, Any]
    topology: Mapping[str, Any]
    alpha: Mapping[str, Any]
    score: Mapping[str, Any]
    failure_modes: Mapping[str, Any]
    quality_gates: Mapping[str, Any]
    boundaries: Mapping[str, Any]
    llm_method: Mapping[str, Any]  # generative models: token / on-policy / sequence KD
    release: Mapping[str, Any]  # the release check: bounded run reads and the ship decision
    runner: Mapping[str, Any]  # the quick distill's experiment design: budget plan, cuts, ties, verdict, student size


def _cache_marker(folder: Path) -> Path | None:
    """Where a validated fingerprint of these exact files is remembered (None: caching off)."""
    if os.environ.get("KD_RULES_CACHE", "").lower() in ("off", "0", "no"):
        return None
    digest = hashlib.sha256()
    files = [folder / f"{n}.yaml" for n in RULE_NAMES] + sorted((folder / LEXICON).glob("*.yaml"))
    files += sorted((folder / "schemas").glob("*.schema.json"))
    for file in files:
        try:
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
        except OSError:
            return None  # a missing file: validate, which reports it by name
    base = os.environ.get("KD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "knowledge-distillation-deep"
    )
    return Path(base) / f"rules-validated-{digest.hexdigest()}"


def load_rules_from(folder: Path) -> RuleSet:
    """Load every rule file from `folder`, validating unless these exact bytes passed before.

    The marker is keyed by the files' bytes: tests load broken copies of the folder.
    """
    marker = _cache_marker(folder)
    known_good = marker is not None and marker.is_file()
    loaded = {
        name: load_rule_file(folder / f"{name}.yaml", name, folder, validate=not known_good) for name in RULE_NAMES
    }
    if marker is not None and not known_good:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("validated\n", encoding="utf-8")
        except OSError:
            pass  # a read-only home only costs the next start the validation
    return RuleSet(**loaded)


@lru_cache(maxsize=1)
def get_rules() -> RuleSet:
    """The shipped rules, loaded and validated once per process."""
    return load_rules_from(rules_dir())


def rule_file_text(name: str) -> str:
    """Raw text of a rule file, for the MCP resources (a lexicon file as `lexicon.<topic>`, so kd://rules/ still shows
    every word routing reads); unknown names list the valid ones."""
    files = {n: rules_dir() / f"{n}.yaml" for n in RULE_NAMES}
    files |= {f"{LEXICON}.{p.stem}": p for p in sorted((rules_dir() / LEXICON).glob("*.yaml"))}
    if name not in files:
        raise KeyError(f"unknown rule file {name!r}; known: {', '.join(files)}")
    return files[name].read_text(encoding="utf-8")
