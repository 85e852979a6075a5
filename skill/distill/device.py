"""Where a quick distill trains: `device auto` takes an accelerator when torch sees one, else the CPU (the tested
path); an accelerator that was asked for by name and is not there is refused with the reason, never silently
replaced by the CPU."""

from __future__ import annotations

from collections.abc import Callable

import torch

from skill.errors import InputError
from skill.rules import get_rules


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(
    requested: str, cuda: Callable[[], bool] = torch.cuda.is_available, mps: Callable[[], bool] = _mps_available
) -> tuple[torch.device, str]:
    """(device, why). `cuda` and `mps` are the availability probes (replaceable in tests)."""
    accepted = list(get_rules().runner["devices"])
    if requested not in accepted:
        raise InputError("device", f"{requested!r} is not one of {', '.join(accepted)}")
    if requested == "auto":
        if cuda():
            return torch.device("cuda"), f"auto: CUDA is available ({torch.cuda.get_device_name(0)})"
        if mps():
            return torch.device("mps"), "auto: Apple MPS is available"
        return torch.device("cpu"), "auto: no accelerator is visible to torch, so the CPU"
    if requested == "cuda" and not cuda():
        build = "this torch build has no CUDA support" if torch.version.cuda is None else "torch sees no CUDA device"
        raise InputError(
            "device", f"cuda was asked for but {build} (torch {torch.__version__}); use device auto or cpu"
        )
    if requested == "mps" and not mps():
        raise InputError("device", "mps was asked for but torch sees no Apple MPS device here; use device auto or cpu")
    return torch.device(requested), "fixed by the caller"
