"""Get a teacher from the user: precomputed logits (.npz), safetensors weights of one of the runner's own nets, or
TorchScript.

Trust: logits and safetensors are data, read without pickle and within size caps. TorchScript is a program (it can
read and write files, loop forever), so it is loaded only where the policy allows it: the CLI (the user's own file,
with a warning) or an MCP server started with --allow-torchscript, and then only inside the killable worker.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from skill.distill import nets, sources
from skill.distill.bounded import LOGIT_MEMBERS, read_npz_members
from skill.distill.sources import TORCHSCRIPT_REFUSED, redact_paths
from skill.distill.targets import NetOutput
from skill.errors import InputError

MAX_WEIGHTS_BYTES = 2 * 1024**3
# "warn": load with a one-line warning (CLI, library); "allow": load silently; "refuse": never load (MCP default)
TORCHSCRIPT_POLICY = "warn"


def load_torchscript(path: Path) -> torch.nn.Module:
    """torch.jit.load only: a pickled object posing as weights is refused, never unpickled."""
    if TORCHSCRIPT_POLICY == "refuse":
        raise InputError("teacher", TORCHSCRIPT_REFUSED)
    if TORCHSCRIPT_POLICY == "warn":
        sys.stderr.write(
            f"warning: teacher {path.name} is TorchScript, a program that runs with your permissions; load only files "
            "you trust\n"
        )
    with sources.open_binary(str(path), "teacher") as handle:
        try:
            module = torch.jit.load(handle, map_location="cpu")
        except Exception as exc:
            raise InputError(
                "teacher",
                f"{path.name} is not a TorchScript archive (export with torch.jit.script or trace), "
                f"and pickled objects are refused: {str(exc).splitlines()[0][:160]}",
            ) from exc
    module.eval()
    return _Guarded(module)


class _Guarded(torch.nn.Module):
    """A TorchScript teacher whose run-time failure becomes one line naming the teacher, not an interpreter
    traceback."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> NetOutput:
        try:
            return self.inner(x)
        except Exception as exc:  # torch.jit.Error, or RuntimeError("...failed in the TorchScript interpreter...")
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            # a teacher must not probe the disk through its errors
            last = redact_paths(lines[-1] if lines else "no message")[:200]
            # the cause goes to the operator's log
            raise InputError("teacher", f"the TorchScript teacher failed while running: {last}") from exc


def load_logits(path: Path, n_train_total: int, n_test: int, num_classes: int) -> dict[str, np.ndarray]:
    """Teacher logits aligned with the dataset: logits_train (all X_train rows), logits_test, optional
    logits_unlabeled (X_unlabeled's rows); logits_val is accepted and checked but not needed (validation rows come
    out of X_train, whose logits are in logits_train)."""
    with sources.open_binary(str(path), "teacher") as handle:
        arrays = read_npz_members(handle, path.name, "teacher", LOGIT_MEMBERS)
    for key, rows in (("logits_train", n_train_total), ("logits_test", n_test)):
        a = arrays[key]
        if a.ndim != 2 or a.shape != (rows, num_classes):
            raise InputError(
                "teacher", f"{key} has shape {a.shape}; expected ({rows}, {num_classes}) aligned with the dataset"
            )
    for key in ("logits_unlabeled", "logits_val"):  # logits_unlabeled's rows are checked against X_unlabeled later
        extra = arrays.get(key)
        if extra is not None and (extra.ndim != 2 or extra.shape[1] != num_classes):
            raise InputError(
                "teacher", f"{key} has shape {extra.shape}; expected (rows, {num_classes}): one column per class"
            )
    for key, a in arrays.items():
        if not np.isfinite(a).all():
            raise InputError("teacher", f"{key} contains NaN or infinity")
    return {k: v.astype(np.float32) for k, v in arrays.items()}


def net_spec_metadata(arch: str, hidden: list[int], scaler: dict[str, torch.Tensor] | None = None) -> dict[str, str]:
    """What a safetensors file needs to say to be loaded back as a teacher (written with every student): the net, and
    the input scaling it was trained with, so a later run can feed it raw inputs (the scaler file beside it says the
    same)."""
    meta = {"kd_arch": arch, "kd_hidden": json.dumps([int(h) for h in hidden])}
    if scaler is not None:
        meta |= {
            "kd_input_mean": json.dumps(scaler["mean"].tolist()),
            "kd_input_std": json.dumps(scaler["std"].tolist()),
        }
    return meta


class Standardised(torch.nn.Module):
    """A saved student with the input scaling it was trained with in front: it takes raw inputs, as teachers do."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: torch.nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> NetOutput:
        return self.net((x - self.mean) / self.std)


def _input_scaling(meta: dict[str, str], name: str, in_features: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    if "kd_input_mean" not in meta and "kd_input_std" not in meta:
        return None
    try:
        mean, std = (torch.tensor(json.loads(meta[k]), dtype=torch.float32) for k in ("kd_input_mean", "kd_input_std"))
    except (KeyError, ValueError, TypeError, RecursionError):
        raise InputError(
            "teacher", f"{name}: metadata kd_input_mean/kd_input_std are not two lists of numbers"
        ) from None
    if (
        mean.shape != (in_features,)
        or std.shape != (in_features,)
        or not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all())
    ):
        raise InputError(
            "teacher",
            f"{name}: its input scaling has {tuple(mean.shape)} / {tuple(std.shape)} values for {in_features} features "
            "(or non-finite or non-positive ones); it was trained on other data",
        )
    return mean, std


def load_safetensors(
    path: Path, arch: str, hidden: list[int], in_features: int, num_classes: int, side: int | None
) -> torch.nn.Module:
    """Weights for one of the runner's nets: the architecture from the file's metadata (kd_arch, kd_hidden) or the
    request."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if sources.size_of(str(path)) > MAX_WEIGHTS_BYTES:
        raise InputError("teacher", f"{path.name} is larger than {MAX_WEIGHTS_BYTES // 2**30} GiB")
    with sources.open_binary(str(path), "teacher") as handle:
        blob = handle.read(MAX_WEIGHTS_BYTES + 1)
    try:
        header_len = int.from_bytes(blob[:8], "little")
        meta = (
            json.loads(blob[8 : 8 + header_len]).get("__metadata__") or {}
            if 0 < header_len < min(len(blob), 100 * 2**20)
            else {}
        )
        state = load(blob)
    # RecursionError: a deeply nested header
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError, RecursionError) as exc:
        raise InputError("teacher", f"{path.name} is not a readable safetensors file ({str(exc)[:120]})") from exc
    if "kd_arch" in meta:
        arch = meta["kd_arch"]
        try:
            hidden = [int(h) for h in json.loads(meta.get("kd_hidden", "[]"))]
        except (ValueError, TypeError):
            raise InputError(
                "teacher", f"{path.name}: metadata kd_hidden {meta.get('kd_hidden')!r} is not a list of sizes"
            ) from None
    if arch not in ("mlp", "cnn", "cnn1d") or not hidden or any(not 1 <= h <= 4096 for h in hidden) or len(hidden) > 6:
        raise InputError(
            "teacher",
            f"{path.name}: architecture {arch!r} {hidden} is not one of the runner's nets (mlp, cnn or cnn1d, 1-6 "
            "sizes in 1..4096); set arch and teacher_hidden to the net the weights belong to",
        )
    try:
        module: torch.nn.Module = nets.build(arch, in_features, hidden, num_classes, side)
        module.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as exc:
        raise InputError(
            "teacher",
            f"{path.name} does not fit a {arch} with hidden {hidden}, {in_features} inputs and {num_classes} classes: "
            f"{str(exc).splitlines()[0][:160]}",
        ) from exc
    scaling = _input_scaling(meta, path.name, in_features)
    if scaling is not None:
        module = Standardised(module, *scaling)
    module.eval()
    return module


TEACHER_KINDS = {".npz": "logits", ".safetensors": "safetensors", ".pt": "torchscript", ".ts": "torchscript"}


def teacher_kind(path: Path) -> str:
    """logits, safetensors or torchscript, by the file's extension; any other extension is refused before anything
    is read (a .csv was treated as TorchScript and drew a security warning about running a program)."""
    kind = TEACHER_KINDS.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            "teacher",
            f"{path.name}: unknown teacher file extension {path.suffix or '(none)'!r}; accepted: .npz (precomputed "
            "logits), .safetensors (weights of the runner's own net), .pt or .ts (TorchScript), or 'train'",
        )
    return kind


def load_teacher_module(
    path: Path, arch: str, hidden: list[int], in_features: int, num_classes: int, side: int | None
) -> torch.nn.Module:
    """The runner's hook for a teacher file that is not logits: safetensors weights or TorchScript (.pt/.ts)."""
    kind = teacher_kind(path)
    if kind == "safetensors":
        return load_safetensors(path, arch, hidden, in_features, num_classes, side)
    if kind != "torchscript":
        raise InputError("teacher", f"{path.name} holds precomputed logits, not a teacher module")
    return load_torchscript(path)
