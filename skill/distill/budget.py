"""An honest size cap: every parameter counted and the work of a training step estimated before anything trains.

Parameters are counted on nets built by `nets.build` on the meta device (no memory, no time), so any architecture
it knows is counted as it really is: input layer, conv kernels, heads. Only a net that passes that cap is built
for real, and one forward of a single row, with hooks, counts its work: every layer with a weight (Linear,
ConvNd) does 2 x output elements x weights per output channel, linear in the batch. (A forward on meta tensors,
or torch's FlopCounterMode, costs about 2 s of lazy imports in every fresh worker.) A training step is about
three forwards. The machine's speed is measured with a short matmul, so a refusal quotes real numbers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from skill.distill import nets
from skill.errors import InputError

if TYPE_CHECKING:
    from skill.distill.data import Dataset

MAX_PARAMS = 20_000_000  # all nets of a run together: about 80 MB of float32, ample for a CPU experiment
STEP_SHARE = 0.1  # one step may take at most this share of the budget, so a check between steps keeps the budget
TRAIN_STEP_FORWARDS = 3.0


def _meta_net(arch: str, data: Dataset, hidden: list[int]) -> torch.nn.Module:
    with torch.device("meta"):
        return nets.build(arch, data.X_train.shape[1], hidden, data.num_classes, data.image_side)


def _real_net(arch: str, data: Dataset, hidden: list[int]) -> torch.nn.Module:
    return nets.build(arch, data.X_train.shape[1], hidden, data.num_classes, data.image_side)


def _forward_flops(net: torch.nn.Module, batch: int, features: int) -> int:
    """Work of a forward at `batch`, from one real forward of a single row (every layer here is linear in the batch)."""
    total = [0]

    def count(module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2 and isinstance(output, torch.Tensor):
            total[0] += 2 * output.numel() * (weight.numel() // weight.shape[0])

    handles = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net(torch.zeros(1, features))
    finally:
        for handle in handles:
            handle.remove()
    return total[0] * batch


def measured_flops_per_s() -> float:
    """Best of three 384x384 float32 matmuls at the current thread setting."""
    a = torch.randn(384, 384)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * 384**3 / max(best, 1e-6)


def check_run_size(cfg: Any, arch: str, data: Dataset, teacher_hidden: list[int] | None = None) -> None:
    """Refuse, with the numbers, a run whose nets or steps cannot fit the caps and the time budget.

    teacher_hidden: the sizes the run will really build (a conv teacher has its own default), else
    cfg.teacher_hidden."""
    features, batch = data.X_train.shape[1], min(cfg.batch_size, max(len(data.X_train), 1))
    nets_of_run: list[tuple[str, list[int], int, bool]] = []  # name, hidden, copies, trained here
    if cfg.teacher == "train":
        nets_of_run.append(
            (
                "teacher_hidden",
                list(teacher_hidden or cfg.teacher_hidden),
                cfg.num_teachers if cfg.topology == "ensemble" else 1,
                True,
            )
        )
    if cfg.student_hidden:
        nets_of_run.append(
            ("student_hidden", list(cfg.student_hidden), cfg.num_peers if cfg.topology == "online" else 1, True)
        )
    total_params, speed = 0, None
    for name, hidden, copies, _ in nets_of_run:
        net = _meta_net(arch, data, hidden)
        params = nets.count_params(net) * copies
        total_params += params
        if total_params > MAX_PARAMS:
            raise InputError(
                name,
                f"{arch} {hidden} on {features} inputs and {data.num_classes} classes has {params:,} parameters "
                f"(x{copies} nets); "
                f"a quick distill allows {MAX_PARAMS:,} in all",
            )
        flops = _forward_flops(_real_net(arch, data, hidden), batch, features) * TRAIN_STEP_FORWARDS
        speed = speed or measured_flops_per_s()
        step_s = flops / speed
        if step_s > cfg.time_budget_s * STEP_SHARE:
            raise InputError(
                name,
                f"one training step of the {arch} {hidden} at batch_size {batch} needs about {flops / 1e9:.1f} GFLOP, "
                f"about {step_s:.2f} s here ({speed / 1e9:.0f} GFLOP/s measured with {torch.get_num_threads()} "
                "threads); "
                f"time_budget_s {cfg.time_budget_s:g} allows {cfg.time_budget_s * STEP_SHARE:.2f} s per step; "
                "lower batch_size or the hidden sizes, or raise time_budget_s",
            )
