"""Read a run folder written by an exported recipe, and fill a tool's inputs from it (`from_run`).

A classification run (torchrun) leaves evidence.json and predictions.npz, a generation run (TRL) leaves
generation_evidence.json; config.yaml beside or above the run folder adds the plan (temperature, alpha). Every file
is read bounded (release.yaml limits), opened under the data root when one is set (the MCP server sets it), and a
missing, damaged or oversized file is refused in one line naming it. Numbers the caller passes win over the run's.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator
from pydantic import Field as PydanticField

from skill.errors import InputError
from skill.models import MissingInput, RunEvidence, RunValue
from skill.rules import get_rules

if TYPE_CHECKING:
    import numpy as np

FIELD = "from_run"
# Where run folders may lie. None: the data root of this process (KD_DATA_ROOT, else the working directory), as the
# MCP server's default; the server sets its --data-root here, the CLI sets ANYWHERE (its user reads their own disk).
# The MCP server passes (data root, output root): recipes and their runs are written under the output root, so a run
# folder may lie under either (each read stays confined to the root it lies under, read-only).
RUN_ROOT: ContextVar[Path | tuple[Path, ...] | None] = ContextVar("kd_run_root", default=None)
ANYWHERE = Path("/")
NOT_FROM_A_RUN = "a deployment fact the run cannot show; pass it yourself"
Request = TypeVar("Request", bound=BaseModel)


@dataclass
class Run:
    """What a run folder holds, checked: the plan's settings, the evidence document and (classification) the arrays."""

    shown: str
    kind: Literal["classification", "generation"]
    settings: dict[str, tuple[Any, str]]  # "section.name" -> (value, evidence) from config.yaml
    evidence: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def model(self, name: str) -> dict[str, Any]:
        value = (self.evidence.get("models") or {}).get(name)
        return value if isinstance(value, dict) else {}


# ---- evidence.json, in its documented shape ------------------------------------------------------------

_Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_Share = Annotated[float, PydanticField(ge=0, le=1, allow_inf_nan=False, strict=True)]
_Count = Annotated[int, PydanticField(ge=0, le=10**12, strict=True)]
_Positive = Annotated[int, PydanticField(ge=1, le=10**13, strict=True)]
_Seconds = Annotated[float, PydanticField(ge=0, le=1e9, allow_inf_nan=False, strict=True)]


class _Checked(BaseModel):
    """No bool for a number, no NaN or infinity, no string longer than a name (extra keys are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bools(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, bool) and key not in cls._booleans():
                    raise ValueError(f"{key}: a number was expected, got {value!r}")
        return data

    @classmethod
    def _booleans(cls) -> set[str]:
        return set()


class EvidenceModel(_Checked):
    """One model's numbers in evidence.json (models.<name>)."""

    accuracy: _Share | None = None
    ece: _Share | None = None
    test_rows: _Positive | None = None
    per_class_accuracy: dict[_Name, _Share] | None = PydanticField(None, max_length=10000)
    class_support: dict[_Name, _Count] | None = PydanticField(None, max_length=10000)
    error_confidence: _Share | None = None
    params: _Positive | None = None
    bytes: _Positive | None = None
    latency_ms_batch1: _Seconds | None = None
    throughput_per_s: _Seconds | None = None
    throughput_batch: _Positive | None = None
    device: _Name | None = None


class EvidencePredictions(_Checked):
    file: _Name | None = None
    rows: _Positive
    sampled: bool = False
    groups: Annotated[str, StringConstraints(max_length=200)] | None = None

    @classmethod
    def _booleans(cls) -> set[str]:
        return {"sampled"}


class CurvePoint(_Checked):
    name: _Name
    params: _Positive
    accuracy: _Share


class EvidenceSettings(_Checked):
    """What the recipe trained with, recorded at run time (older runs record fewer of these)."""

    groups: Annotated[str, StringConstraints(max_length=200)] | None = None
    method: _Name | None = None
    temperature: Annotated[float, PydanticField(gt=0, le=1000, allow_inf_nan=False, strict=True)] | None = None
    temperature_evidence: Annotated[str, StringConstraints(max_length=300)] | None = None
    kd_loss_weight: _Share | None = None
    epochs: _Positive | None = None
    student_sizes: list[_Positive] | None = PydanticField(None, max_length=16)
    world_size: _Positive | None = None
    topology: _Name | None = None
    alpha: _Share | None = None
    alpha_reason: Annotated[str, StringConstraints(max_length=2000)] | None = None
    alpha_evidence: Annotated[str, StringConstraints(max_length=300)] | None = None
    config: Annotated[str, StringConstraints(max_length=300)] | None = None
    class_names: list[Annotated[str, StringConstraints(max_length=200)]] | None = PydanticField(None, max_length=10000)


class EvidenceDocument(_Checked):
    """evidence.json of a torchrun run (schema_version 1), as kd_recipe/evidence.py writes it."""

    kind: Literal["classification"]
    schema_version: Literal[1]
    test_rows: _Positive
    classes: Annotated[int, PydanticField(ge=2, le=100000, strict=True)]
    predictions: EvidencePredictions
    models: dict[_Name, EvidenceModel] = PydanticField(max_length=16)
    size_accuracy_curve: list[CurvePoint] = PydanticField(default_factory=list, max_length=16)
    settings: EvidenceSettings = PydanticField(default_factory=EvidenceSettings)

    @model_validator(mode="after")
    def _consistent(self) -> EvidenceDocument:
        for role in ("teacher", "student"):
            if role not in self.models:
                raise ValueError(f"models.{role}: missing (the recipe always scores the teacher and the student)")
        if self.predictions.rows > self.test_rows:
            raise ValueError(f"predictions.rows ({self.predictions.rows}) exceeds test_rows ({self.test_rows})")
        if not self.predictions.sampled and self.predictions.rows != self.test_rows:
            raise ValueError(
                f"predictions.rows ({self.predictions.rows}) differs from test_rows ({self.test_rows}) "
                "although predictions.sampled is false"
            )
        return self


def check_classification(document: dict[str, Any], shown: str) -> dict[str, Any]:
    """evidence.json validated (types, finite numbers, ranges, capped strings); one line naming the file and field."""
    from pydantic import ValidationError

    try:
        checked = EvidenceDocument.model_validate(document)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "(document)"
        message = err["msg"].removeprefix("Value error, ")
        plain = err["type"] in ("missing", "value_error") or not err["loc"]
        given = "" if plain else f" (got {_brief(err.get('input'))})"
        more = f"; and {len(exc.errors()) - 1} more" if len(exc.errors()) > 1 else ""
        raise InputError(FIELD, f"{shown} is damaged: {where}: {message}{given}{more}") from None
    return checked.model_dump(mode="python", exclude_none=True)


# ---- bounded, confined reads ----------------------------------------------------------------------


def _limits() -> Any:
    return get_rules().release["limits"]


def _root_and_dir(raw: str) -> tuple[Path, str]:
    root = RUN_ROOT.get()
    if root is None:
        root = Path(os.environ.get("KD_DATA_ROOT") or os.getcwd())
    if root == ANYWHERE:
        return root, os.path.abspath(os.path.expanduser(raw))  # the CLI: relative to the working directory
    from skill.paths import confine

    roots = list(dict.fromkeys(root)) if isinstance(root, tuple) else [root]
    first: InputError | None = None
    for candidate in roots:
        try:
            where = confine(raw, candidate, FIELD, must_exist=False)  # outside: refused before anything is looked at
        except InputError as exc:
            first = first or exc
            continue
        if where.is_dir() or candidate == roots[-1]:
            return candidate, raw
    if first is not None and len(roots) > 1:
        shown = " or ".join(str(r) for r in roots)
        why = str(first).removeprefix(FIELD + ": ")
        raise InputError(FIELD, f"{raw!r} lies outside the allowed roots ({shown}): {why}")
    raise first or InputError(FIELD, f"{raw!r} is not a folder under {roots[0]}")


def _exists(root: Path, folder: str, name: str) -> bool:
    """A cheap look before the confined open, only to choose between files; the open itself is checked again."""
    base = Path(folder) if Path(folder).is_absolute() else root / folder
    return (base / name).is_file()


def _read(root: Path, folder: str, name: str, max_bytes: int) -> bytes:
    """The file's bytes, opened under the root without following links; refused when over max_bytes."""
    from skill.paths import open_input

    shown = f"{folder.rstrip('/')}/{name}"
    opened = open_input(shown, root, FIELD)
    with os.fdopen(opened.fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(max_bytes + 1) if size <= max_bytes else b""
    if size > max_bytes or len(data) > max_bytes:  # too large on disk, or grew while being read
        raise InputError(
            FIELD,
            f"{shown} is too large: {max(size, len(data)):,} bytes, at most {max_bytes:,} "
            "(release.yaml limits); not a file the recipe writes",
        )
    return data


def _json(root: Path, folder: str, name: str) -> dict[str, Any]:
    data = _read(root, folder, name, int(_limits()["max_json_bytes"]))
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(
            FIELD, f"{folder}/{name} is damaged: not valid JSON ({str(exc).splitlines()[0][:120]})"
        ) from None
    if not isinstance(value, dict):
        raise InputError(FIELD, f"{folder}/{name} is damaged: a JSON object was expected")
    return value


def _config(root: Path, folder: str) -> dict[str, tuple[Any, str]]:
    """config.yaml of the recipe (in the run folder's parent, where the export wrote it, or in the folder itself)."""
    import yaml

    for candidate in (folder, str(Path(folder).parent)):
        if _exists(root, candidate, "config.yaml"):
            try:
                raw = yaml.safe_load(
                    _read(root, candidate, "config.yaml", int(_limits()["max_config_bytes"])).decode("utf-8")
                )
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise InputError(
                    FIELD, f"{candidate}/config.yaml is damaged: {str(exc).splitlines()[0][:120]}"
                ) from None
            except InputError:
                if candidate == folder:
                    raise
                return {}  # the parent lies outside the root: the run folder alone
            flat: dict[str, tuple[Any, str]] = {}
            for section, entries in (raw or {}).items() if isinstance(raw, dict) else []:
                for name, leaf in (entries or {}).items() if isinstance(entries, dict) else []:
                    if isinstance(leaf, dict) and "value" in leaf:
                        flat[f"{section}.{name}"] = (leaf["value"], str(leaf.get("evidence") or ""))
            return flat
    return {}


def _load_npz(data: bytes, shown: str) -> dict[str, np.ndarray]:
    """The archive's arrays, its member count and expanded size checked before numpy decompresses anything."""
    import numpy as np

    limits = _limits()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > int(limits["max_predictions_members"]):
                raise InputError(
                    FIELD,
                    f"{shown} holds {len(members)} arrays; the recipe writes at most "
                    f"{limits['max_predictions_members']} (release.yaml limits)",
                )
            expanded = sum(member.file_size for member in members)
            if expanded > int(limits["max_predictions_uncompressed_bytes"]):
                raise InputError(
                    FIELD,
                    f"{shown} expands to {expanded / 2**20:.0f} MiB; at most "
                    f"{int(limits['max_predictions_uncompressed_bytes']) // 2**20} MiB",
                )
            for member in members:
                _check_declared(archive, member, shown)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except InputError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(FIELD, f"{shown} is damaged ({reason}); rerun the recipe's evaluation to rewrite it") from None


def _label_count(arrays: dict[str, np.ndarray], shown: str) -> int:
    """Labels and student probabilities must be there; the labels a non-empty 1-D integer array within the raw
    diagnosis limit. Returns the number of rows."""
    raw_limits = get_rules().failure_modes["raw_limits"]
    for key in ("labels", "student_probs"):
        if key not in arrays:
            raise InputError(
                FIELD, f"{shown} is damaged: it lacks {key!r} (has {', '.join(sorted(arrays)) or 'nothing'})"
            )
    labels = arrays["labels"]
    n = len(labels) if labels.ndim == 1 else -1
    if n < 1 or labels.dtype.kind not in "iu":
        raise InputError(
            FIELD,
            f"{shown} is damaged: labels must be a non-empty 1-D integer array, got {labels.dtype} {labels.shape}",
        )
    if n > int(raw_limits["max_samples"]):
        raise InputError(
            FIELD, f"{shown} holds {n} rows; at most {raw_limits['max_samples']} (failure_modes.yaml raw_limits)"
        )
    return n


def _class_width(arrays: dict[str, np.ndarray], shown: str, n: int, classes_hint: int | None) -> int | None:
    """Every *_probs array: float probability rows for the n labels, all as wide as evidence.json's classes.
    Returns that width (the hint when no array says otherwise)."""
    import numpy as np

    width = classes_hint
    for key in [k for k in arrays if k.endswith("_probs")]:
        probs = arrays[key]
        if probs.ndim != 2 or len(probs) != n or probs.dtype.kind != "f" or probs.shape[1] < 2:
            raise InputError(
                FIELD,
                f"{shown} is damaged: {key} must be float rows x classes for {n} labels, "
                f"got {probs.dtype} {probs.shape}",
            )
        if width is not None and probs.shape[1] != width:
            raise InputError(
                FIELD,
                f"{shown} is damaged: {key} has {probs.shape[1]} classes, evidence.json classes says {width}",
            )
        width = probs.shape[1]
        if not np.isfinite(probs).all():
            raise InputError(FIELD, f"{shown} is damaged: {key} holds NaN or infinity")
        if (probs < 0).any() or (probs > 1).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-2):
            raise InputError(
                FIELD,
                f"{shown} is damaged: {key} rows must be probabilities in [0, 1] summing to 1 "
                "(the recipe saves softmax outputs; these look like logits or were edited)",
            )
    return width


def _predictions(root: Path, folder: str, classes_hint: int | None) -> dict[str, np.ndarray]:
    """predictions.npz: plain arrays only (allow_pickle=False), sizes checked before decompression, shapes after."""
    raw_limits = get_rules().failure_modes["raw_limits"]
    shown = f"{folder}/predictions.npz"
    arrays = _load_npz(_read(root, folder, "predictions.npz", int(_limits()["max_predictions_bytes"])), shown)
    n = _label_count(arrays, shown)
    width = _class_width(arrays, shown, n, classes_hint)
    labels = arrays["labels"]
    if width is not None and (labels.min() < 0 or labels.max() >= width):
        raise InputError(
            FIELD,
            f"{shown} is damaged: labels must lie in 0..{width - 1} ({width} classes), "
            f"got {int(labels.min())}..{int(labels.max())}",
        )
    if "groups" in arrays and (arrays["groups"].ndim != 1 or len(arrays["groups"]) != n):
        raise InputError(FIELD, f"{shown} is damaged: groups must hold one entry per label ({n})")
    if width is not None and n * width * 2 > int(raw_limits["max_values"]):
        raise InputError(
            FIELD,
            f"{shown} holds {n} x {width} probabilities per model; "
            f"at most {raw_limits['max_values']} values for two models",
        )
    return arrays


def _check_declared(archive: zipfile.ZipFile, member: zipfile.ZipInfo, shown: str) -> None:
    """An .npy header declares its shape and dtype; numpy allocates that much before reading the data. The declared
    size must match the bytes the member really holds, so a 1 KB file cannot ask for gigabytes."""
    import numpy as np
    from numpy.lib import format as npy

    name = member.filename.removesuffix(".npy")
    try:
        with archive.open(member) as handle:
            version = npy.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = npy.read_array_header_1_0(handle, max_header_size=10000)
            elif version == (2, 0):
                shape, _, dtype = npy.read_array_header_2_0(handle, max_header_size=10000)
            else:
                raise ValueError(f"npy format version {version} is not one the recipe writes")
            header = handle.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(FIELD, f"{shown} is damaged: array {name!r}: {reason}") from None
    if dtype.hasobject or dtype.itemsize == 0:
        raise InputError(FIELD, f"{shown} is damaged: array {name!r} has dtype {dtype}; plain numbers or text only")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared != member.file_size - header:
        raise InputError(
            FIELD,
            f"{shown} is damaged: array {name!r} declares shape {tuple(shape)} of {dtype} ({declared:,} bytes) "
            f"but holds {member.file_size - header:,} bytes",
        )


def read_run(raw: str) -> Run:
    """The run folder, read and checked; one line naming the file on anything missing, damaged or too large."""
    root, folder = _root_and_dir(raw)
    if _exists(root, folder, "generation_evidence.json") and _exists(root, folder, "evidence.json"):
        raise InputError(
            FIELD,
            f"{folder} holds both evidence.json (a torchrun run) and generation_evidence.json (a TRL run); "
            "one run folder holds one run's evidence: give each run its own --output-dir",
        )
    if _exists(root, folder, "generation_evidence.json"):
        document = _json(root, folder, "generation_evidence.json")
        return Run(
            folder,
            "generation",
            _config(root, folder),
            check_generation(document, f"{folder}/generation_evidence.json"),
        )
    if not _exists(root, folder, "evidence.json"):
        raise InputError(
            FIELD,
            f"{raw!r} holds neither evidence.json (a torchrun run) nor generation_evidence.json (a TRL run); "
            "give the run's --output-dir, after the run finished",
        )
    document = _json(root, folder, "evidence.json")
    if document.get("kind") != "classification" or document.get("schema_version") != 1:
        raise InputError(
            FIELD,
            f"{folder}/evidence.json is not a schema_version 1 classification evidence file "
            f"(kind {_brief(document.get('kind'))}, schema_version {_brief(document.get('schema_version'))})",
        )
    document = check_classification(document, f"{folder}/evidence.json")
    if not _exists(root, folder, "predictions.npz"):
        raise InputError(
            FIELD,
            f"{folder} has evidence.json but no predictions.npz (a regular file); the recipe writes both at the end "
            "of a run: rerun train.py to finish it",
        )
    arrays = _predictions(root, folder, document["classes"])
    _cross_check(document, arrays, folder)
    return Run(folder, "classification", _config(root, folder), document, arrays)


def _cross_check(document: dict[str, Any], arrays: dict[str, np.ndarray], folder: str) -> None:
    """evidence.json and predictions.npz must describe the same run: the same rows, classes and accuracies."""
    labels = arrays["labels"]
    n, rows = len(labels), document["predictions"]["rows"]
    where = f"{folder}: evidence.json and predictions.npz disagree"
    if n != rows:
        raise InputError(FIELD, f"{where}: predictions.rows is {rows}, predictions.npz holds {n} labels")
    for key, probs in arrays.items():
        if not key.endswith("_probs"):
            continue
        name = key.removesuffix("_probs")
        block = document["models"].get(name, {})
        if document["predictions"].get("sampled") or "accuracy" not in block:
            continue
        measured = float((probs.argmax(1) == labels).mean())
        # float32 probabilities can flip an exact tie; one row of slack, no more
        if abs(measured - block["accuracy"]) > 1.0 / n + 1e-9:
            raise InputError(
                FIELD,
                f"{where}: models.{name}.accuracy is {block['accuracy']:.4f} in evidence.json, {measured:.4f} from "
                f"{key} and labels in predictions.npz; the files come from different runs or were edited: rerun",
            )


# generation_evidence.json's numbers: section -> key -> (type, may be null)
_GENERATION_SHAPES: dict[str, dict[str, tuple[type, bool]]] = {
    "heldout": {
        "n_sequences": (int, False),
        "n_tokens": (int, False),
        "student_nll_per_token": (float, True),
        "teacher_nll_per_token": (float, True),
        "token_kl_teacher_to_student": (float, True),
        "greedy_next_token_agreement": (float, True),
    },
    "models": {
        "student_params": (int, False),
        "teacher_params": (int, True),
        "student_bytes": (int, False),
        "teacher_bytes": (int, True),
    },
}


def _damaged(shown: str, where: str, what: str) -> InputError:
    return InputError(FIELD, f"{shown} is damaged: {where} {what}")


def _finite_non_negative(value: Any, kind: type) -> bool:
    """A finite number >= 0 (an integer where kind is int); a boolean is not a number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (kind is int and not isinstance(value, int)):
        return False
    return math.isfinite(value) and value >= 0


def _check_generation_shapes(document: dict[str, Any], shown: str) -> None:
    """Each section an object, each number of the right type, finite and non-negative, null only where allowed."""
    for section, keys in _GENERATION_SHAPES.items():
        block = document.get(section)
        if not isinstance(block, dict):
            raise _damaged(shown, section, "must be an object")
        for key, (kind, nullable) in keys.items():
            value = block.get(key)
            if value is None and nullable and key in block:
                continue
            if not _finite_non_negative(value, kind):
                what = "integer" if kind is int else "number"
                raise _damaged(
                    shown,
                    f"{section}.{key}",
                    f"must be a finite non-negative {what}{' or null' if nullable else ''}, got {_brief(value)}",
                )


def _check_heldout(held: dict[str, Any], shown: str) -> None:
    """The held-out numbers agree with each other: per-token means need scored tokens, and the reverse."""
    same = held.get("same_tokenizer")
    if same is not None and not isinstance(same, bool):
        raise _damaged(shown, "heldout.same_tokenizer", f"must be true, false or null, got {_brief(same)}")
    agreement = held["greedy_next_token_agreement"]
    if agreement is not None and not 0 <= agreement <= 1:
        raise _damaged(shown, "heldout.greedy_next_token_agreement", f"must lie in [0, 1], got {_brief(agreement)}")
    if held["n_tokens"] == 0 and any(
        held[k] is not None for k in ("student_nll_per_token", "teacher_nll_per_token", "token_kl_teacher_to_student")
    ):
        raise _damaged(
            shown, "heldout.n_tokens", "is 0 but per-token numbers are given: a per-token mean over no token"
        )
    if held["n_tokens"] > 0 and held["student_nll_per_token"] is None:
        raise _damaged(
            shown, "heldout.student_nll_per_token", f"is null although {held['n_tokens']} tokens were scored"
        )
    if held["n_tokens"] < held["n_sequences"]:
        raise _damaged(shown, "heldout.n_tokens", f"({held['n_tokens']}) is below n_sequences ({held['n_sequences']})")


def _check_generation_models(models: dict[str, Any], shown: str) -> None:
    """A student with parameters, and no larger than its teacher when the teacher's size is known."""
    if models["student_params"] < 1:
        raise _damaged(shown, "models.student_params", "must be at least 1: a student without parameters")
    if models["teacher_params"] is not None and models["student_params"] > models["teacher_params"]:
        raise _damaged(
            shown,
            "models",
            f"student_params {models['student_params']:,} exceeds teacher_params {models['teacher_params']:,}: "
            "a distilled student is smaller than its teacher (are the roles swapped?)",
        )


def check_generation(document: dict[str, Any], shown: str) -> dict[str, Any]:
    """generation_evidence.json in exactly its documented shape (schema_version 1); names the first wrong key.

    The recipe writes null where a number cannot exist: the teacher's NLL and size with an API teacher (no local
    weights), KL and greedy agreement when the tokenizers differ (no shared vocabulary), the student's NLL when no
    held-out token was scored. Those are accepted; the checks that need them say so instead of failing."""
    if (
        document.get("kind") != "generation"
        or document.get("schema_version") != get_rules().release["generation"]["schema_version"]
    ):
        raise _damaged(
            shown,
            "kind/schema_version",
            f"must be 'generation'/1, got {document.get('kind')!r}/{document.get('schema_version')!r}",
        )
    _check_generation_shapes(document, shown)
    _check_heldout(document["heldout"], shown)
    _check_generation_models(document["models"], shown)
    samples = document.get("samples")
    fields = ("prompt", "teacher", "student")
    if not isinstance(samples, list) or not all(
        isinstance(s, dict) and set(s) == set(fields) and all(isinstance(s[k], str) for k in fields) for s in samples
    ):
        raise _damaged(
            shown, "samples", "must be a list of objects with exactly the string keys prompt, teacher, student"
        )
    return document


def _brief(value: Any) -> str:
    """A value as shown in an error line: short, whatever it is."""
    text = repr(value) if not isinstance(value, float) or len(repr(value)) <= 20 else f"{value:.6g}"
    return text if len(text) <= 60 else text[:57] + "..."


# ---- what a run supplies to each tool ----------------------------------------------------------------


def _number(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )


def _setting(run: Run, key: str) -> Any:
    return run.settings.get(key, (None, ""))[0]


# the plan's settings the recipe records in evidence.json at run time -> where config.yaml keeps them
_RECORDED = {
    "temperature": "distill.temperature",
    "alpha": "release.alpha",
    "alpha_reason": "release.alpha_reason",
    "topology": "distill.topology",
}


def _plan(run: Run, name: str) -> tuple[Any, str]:
    """(value, its source): what the run recorded in evidence.json settings when it ran first; else config.yaml as it
    is now (it may have been re-exported since the run, and the answer says so)."""
    recorded = (run.evidence.get("settings") or {}).get(name) if run.kind == "classification" else None
    if recorded is not None:
        return recorded, f"evidence.json settings.{name} (recorded by the run)"
    key = _RECORDED[name]
    value = _setting(run, key)
    if value is None:
        return None, ""
    return value, f"config.yaml {key} (read now, not recorded by the run: a re-export after the run changes it)"


def _plan_number(run: Run, name: str) -> tuple[float | None, str]:
    value, where = _plan(run, name)
    number = _number(value)
    return (number, where) if number is not None else (None, "")


def diagnose_values(
    run: Run, given: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """(values, source per field, reason per field the run cannot supply) for kd_diagnose_failure."""
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    missing = {"student_finds_edge_cases": NOT_FROM_A_RUN, "feedback_to_teacher": NOT_FROM_A_RUN}
    if run.kind == "generation":
        reason = "a generation run has no classes; generation_evidence.json is checked by release-check instead"
        return (
            {},
            {},
            {f: reason for f in ("labels", "student_probs", "teacher_probs", "size_accuracy_curve", "groups")},
        )
    arrays = run.arrays
    values["labels"] = arrays["labels"].astype(int).tolist()
    values["student_probs"] = arrays["student_probs"].astype(float).tolist()
    source.update(labels="predictions.npz labels", student_probs="predictions.npz student_probs")
    names = (run.evidence.get("settings") or {}).get("class_names")
    if isinstance(names, list) and len(names) == run.evidence.get("classes"):
        values["class_names"] = names
        source["class_names"] = "evidence.json settings.class_names (the CSV's text labels, in class-id order)"
    if "teacher_probs" in arrays:
        values["teacher_probs"] = arrays["teacher_probs"].astype(float).tolist()
        source["teacher_probs"] = "predictions.npz teacher_probs"
    else:
        missing["teacher_probs"] = "predictions.npz has no teacher_probs"
    if "groups" in arrays:
        values["groups"] = [str(g) for g in arrays["groups"].tolist()]
        source["groups"] = "predictions.npz groups"
    else:
        missing["groups"] = (
            "the run saved no groups; export with engine_options.groups naming a .npz array or .csv column"
        )
    if (run.evidence.get("predictions") or {}).get(
        "sampled"
    ):  # the arrays are a sample: per-class numbers from the whole test set
        student = run.model("student")
        for name in ("per_class_accuracy", "class_support"):
            if isinstance(student.get(name), dict):
                values[name] = student[name]
                source[name] = f"evidence.json models.student.{name} (whole test set; predictions.npz holds a sample)"
    temperature, where = _plan_number(run, "temperature")
    if temperature is not None and temperature > 0:
        values["training_temperature"] = temperature
        source["training_temperature"] = where
    curve = [p for p in run.evidence.get("size_accuracy_curve") or [] if isinstance(p, dict)]
    if len({p.get("params") for p in curve}) >= 2:
        values["size_accuracy_curve"] = [{"params": p["params"], "accuracy": p["accuracy"]} for p in curve]
        source["size_accuracy_curve"] = (
            "evidence.json size_accuracy_curve (" + ", ".join(f"{p.get('name')} {p.get('params')}" for p in curve) + ")"
        )
    else:
        missing["size_accuracy_curve"] = "the run trained one student size; rerun train.py with --student-sizes W1,W2"
    return values, source, missing


def score_values(
    run: Run, given: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """alpha from the plan, sizes in parameters and accuracies from evidence.json, for kd_score_distillation."""
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    missing: dict[str, str] = {
        "min_student_accuracy": "the accuracy floor is a requirement, not a measurement; pass it"
    }
    alpha, where = _plan_number(run, "alpha")
    if alpha is not None and 0 <= alpha <= 1:
        values["alpha"] = alpha
        why = (run.evidence.get("settings") or {}).get("alpha_evidence") if run.kind == "classification" else None
        why = why or (run.settings.get("release.alpha", (None, ""))[1] if where.startswith("config.yaml") else "")
        source["alpha"] = where + (f"; chosen by: {why[:120]}" if why else "")
    else:
        raw, raw_where = _plan(run, "alpha")
        bad = f"{raw_where.split(' (')[0]} is {_brief(raw)}, not a number in [0, 1]; " if raw is not None else ""
        missing["alpha"] = bad + (
            "the run records no alpha in [0, 1] (evidence.json settings.alpha, or config.yaml release.alpha beside "
            "the run); pass alpha (kd_choose_alpha)"
        )
    if run.kind == "generation":
        models = run.evidence["models"]
        values["student_size"] = models["student_params"]
        source["student_size"] = "generation_evidence.json models.student_params"
        if models["teacher_params"] is not None:
            values["teacher_size"] = models["teacher_params"]
            source["teacher_size"] = "generation_evidence.json models.teacher_params"
        else:
            missing["teacher_size"] = "generation_evidence.json has no teacher size (an API or served teacher)"
        reason = "a generation run measures NLL and agreement, not accuracy; pass your task's accuracy to score it"
        missing.update(teacher_accuracy=reason, student_accuracy=reason)
        return values, source, missing
    for role in ("teacher", "student"):
        block = run.model(role)
        for key, target in (("params", f"{role}_size"), ("accuracy", f"{role}_accuracy")):
            if _number(block.get(key)) is not None:
                values[target] = block[key]
                source[target] = f"evidence.json models.{role}.{key}"
            else:
                missing[target] = f"evidence.json has no models.{role}.{key}"
    return values, source, missing


def _temperature_tuned(run: Run) -> tuple[bool | None, str]:
    """From where the exported temperature came: the quick distill's tuning, a rule default, or a person's choice."""
    settings = (run.evidence.get("settings") or {}) if run.kind == "classification" else {}
    recorded = settings.get("temperature_evidence")
    if isinstance(recorded, str):
        why, label = recorded, "evidence.json settings.temperature_evidence (recorded by the run): "
    else:
        why = run.settings.get("distill.temperature", (None, ""))[1]
        label = "config.yaml distill.temperature evidence (read now, not recorded by the run): "
    if why.startswith("tuned on"):
        return True, label + why[:120]
    if why.startswith(("method.yaml", "the quick distill's fixed setting")):
        return False, label + why[:120]
    return None, ""


# gate inputs only a person can give, and the gates a generation run has no input for
_DEPLOYMENT_FACTS = (
    "bias_monitoring",
    "edge_case_monitoring",
    "robustness_suite",
    "rollback_plan",
    "degradation_alerts",
    "cascade_evaluated",
    "latency_budget_ms",
    "memory_budget_mb",
    "accuracy_target",
)
_NOT_FOR_GENERATION = (
    "stratified_validation",
    "per_class_thresholds_met",
    "temperature",
    "temperature_tuned",
    "calibration_validated",
    "capacity_analysis_done",
    "latency_ms",
    "accuracy",
)


@dataclass
class _Filled:
    """What a run supplies to one tool: each value with its source, and why each other input is missing."""

    values: dict[str, Any] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: Any, where: str) -> None:
        self.values[name], self.source[name] = value, where

    def result(self) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
        return self.values, self.source, self.missing


def _gate_alpha(filled: _Filled, run: Run, score: dict[str, Any], score_source: dict[str, str]) -> None:
    """The plan's alpha and the reason recorded for it."""
    if "alpha" in score:
        filled.put("alpha", score["alpha"], score_source["alpha"])
    reason, where = _plan(run, "alpha_reason")
    if isinstance(reason, str) and reason.strip():
        filled.put("alpha_reason", reason[:2000], where)
    else:
        filled.missing["alpha_reason"] = "the run records no alpha_reason; pass alpha_reason (why this alpha)"


def _gate_score(filled: _Filled, run: Run, given: dict[str, Any] | None) -> None:
    """The distillation score at the caller's alpha (else the plan's) from the run's sizes and accuracies, or every
    reason it cannot be computed."""
    score, score_source, score_missing = score_values(run)
    _gate_alpha(filled, run, score, score_source)
    needed = ("teacher_size", "student_size", "teacher_accuracy", "student_accuracy")
    alpha = (given or {}).get("alpha", score.get("alpha"))
    if alpha is not None and set(needed) <= set(score):
        from skill.metrics import distillation_score

        value = distillation_score(
            alpha, score["student_size"], score["teacher_size"], score["student_accuracy"], score["teacher_accuracy"]
        )[0]
        at = "your alpha" if "alpha" in (given or {}) else score_source["alpha"].split(" (")[0]
        filled.put(
            "distillation_score",
            round(value, 6),
            f"computed at {at} ({alpha:g}) from evidence.json parameters and accuracies",
        )
        return
    reasons = [score_missing[k] for k in needed if k in score_missing]
    if alpha is None:
        reasons.insert(0, score_missing.get("alpha", "no alpha: pass alpha"))
    filled.missing["distillation_score"] = "not computed: " + (
        " Also: ".join(dict.fromkeys(r.rstrip(".") + "." for r in reasons)) or "not computable from this run."
    )


def _gate_sizes(filled: _Filled, run: Run) -> None:
    """Compression ratio and the student's memory from the evidence file; one teacher and one student, never
    several agents."""
    models = run.evidence.get("models") or {}
    if run.kind == "generation":
        t_params, s_params, s_bytes = models["teacher_params"], models["student_params"], models["student_bytes"]
        file = "generation_evidence.json"
    else:
        t_params, s_params, s_bytes = (
            run.model("teacher").get("params"),
            run.model("student").get("params"),
            run.model("student").get("bytes"),
        )
        file = "evidence.json"
    if _number(t_params) and _number(s_params):
        filled.put("compression_ratio", max(1.0, t_params / s_params), f"{file} teacher / student parameters")
    if _number(s_bytes) is not None:
        filled.put("memory_mb", s_bytes / 2**20, f"{file} student bytes (weights and buffers)")
    topology, where = _plan(run, "topology")
    filled.put(
        "multi_agent",
        False,
        f"one teacher, one student ({where.split(' (')[0]} {topology})"
        if isinstance(topology, str)
        else "one teacher, one student (what the exported recipe trains)",
    )


def _gate_measurements(filled: _Filled, run: Run, student: dict[str, Any]) -> None:
    """A classification run's latency, accuracy and temperature, and whether that temperature was tuned."""
    if _number(student.get("latency_ms_batch1")) is not None:
        filled.put(
            "latency_ms",
            student["latency_ms_batch1"],
            f"evidence.json models.student.latency_ms_batch1 (batch 1, on {student.get('device', 'the run device')})",
        )
    if _number(student.get("accuracy")) is not None:
        filled.put("accuracy", student["accuracy"], "evidence.json models.student.accuracy")
    temperature, where = _plan_number(run, "temperature")
    if temperature is not None and temperature > 0:
        filled.put("temperature", temperature, where)
    tuned, why = _temperature_tuned(run)
    if tuned is not None:
        filled.put("temperature_tuned", tuned, why)
    else:
        filled.missing["temperature_tuned"] = "the temperature was set by hand in the export; say whether it was tuned"


def _gate_diagnosis(filled: _Filled, run: Run, student: dict[str, Any]) -> None:
    """The gates the diagnosis of the same run answers: stratified validation, per-class thresholds, calibration,
    capacity analysis."""
    from skill.diagnose import diagnose_failure
    from skill.models import DiagnoseFailureRequest

    diag_values, _, _ = diagnose_values(run)
    findings = {f.id: f for f in diagnose_failure(DiagnoseFailureRequest(**diag_values)).findings}
    if isinstance(student.get("per_class_accuracy"), dict) and isinstance(student.get("class_support"), dict):
        filled.put(
            "stratified_validation", True, "evidence.json per-class accuracy and support over the whole test set"
        )
    mirage = findings["accuracy_mirage"]
    if mirage.status != "not_evaluated":
        filled.put(
            "per_class_thresholds_met",
            mirage.status == "clear",
            f"accuracy_mirage {mirage.status} on the run's predictions",
        )
    calibration = findings["temperature_blindness"]
    if calibration.status != "not_evaluated":
        filled.put(
            "calibration_validated",
            calibration.status == "clear",
            f"temperature_blindness {calibration.status}: student against teacher ECE and error confidence",
        )
    if findings["capacity_cliff"].status != "not_evaluated":
        filled.put("capacity_analysis_done", True, "size_accuracy_curve of --student-sizes, checked for a cliff")
    elif "size_accuracy_curve" in diag_values:
        filled.missing["capacity_analysis_done"] = findings["capacity_cliff"].diagnosis
    else:
        filled.missing["capacity_analysis_done"] = (
            "the run trained one student size; rerun train.py with --student-sizes W1,W2"
        )


def gates_values(
    run: Run, given: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """Every gate input a run can show; per-class thresholds and calibration come from the diagnosis of the same run,
    the distillation score at the caller's alpha when one is given."""
    filled = _Filled(missing={name: NOT_FROM_A_RUN for name in _DEPLOYMENT_FACTS})
    _gate_score(filled, run, given)
    _gate_sizes(filled, run)
    if run.kind == "generation":
        reason = "does not apply to a generation run (release.yaml generation.not_applicable_gates)"
        filled.missing.update({name: reason for name in _NOT_FOR_GENERATION})
        return filled.result()
    student = run.model("student")
    _gate_measurements(filled, run, student)
    _gate_diagnosis(filled, run, student)
    return filled.result()


FILLERS = {
    "DiagnoseFailureRequest": diagnose_values,
    "ScoreDistillationRequest": score_values,
    "QualityGatesRequest": gates_values,
}


def apply_run(request: Request) -> tuple[Request, RunEvidence | None]:
    """The request with every input the run supplies filled in (the caller's own numbers win), re-validated."""
    raw = getattr(request, "from_run", None)
    if raw is None:
        return request, None
    from pydantic import ValidationError

    from skill.errors import describe_validation_error

    run = read_run(raw)
    given = request.model_dump(exclude_unset=True, exclude={"from_run"})
    values, source, missing = FILLERS[type(request).__name__](run, given)
    if "candidates" in given:  # ranking the caller's own candidates: the run's single student steps aside
        for key in ("student_size", "student_accuracy"):
            values.pop(key, None)
    overridden = sorted(k for k in given if k in values)
    data = {**values, **given}
    try:
        filled = type(request).model_validate(data)
    except ValidationError as exc:
        text = describe_validation_error(exc)
        if "required (or from_run" in text:  # the run was given: say what it lacks and why, not "or from_run"
            absent = [k for k in missing if k not in data and k in text.split(" required")[0]]
            text = "; ".join(f"{k} is not in the run ({missing[k]})" for k in absent) or text
        raise InputError(FIELD, f"{run.shown}: {text}") from None
    report = RunEvidence(
        run_dir=run.shown,
        kind=run.kind,
        filled=[RunValue(field=k, source=source.get(k, run.shown)) for k in values if k not in given],
        overridden=overridden,
        missing=[
            MissingInput(field=k, effect=reason) for k, reason in missing.items() if k not in given and k not in values
        ],
    )
    return filled, report
