"""Small networks for the runner: an MLP and a CNN that also return their features for hint losses."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Output = tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]  # (logits, features, conv maps)


class StudentNet(nn.Module):
    """What the runner's nets share: `forward` returns Output, and `feature_dim` is the width of the features (the
    input of a FitNets regressor)."""

    feature_dim = 0  # set by each net (no class annotation: TorchScript cannot read a postponed one)

    def forward(self, x: torch.Tensor) -> Output:
        raise NotImplementedError


class MLP(StudentNet):
    """Linear -> ReLU stack; `forward` returns (logits, last hidden features, [])."""

    def __init__(self, in_features: int, hidden: list[int], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)
        self.feature_dim = width

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        h = self.body(x)
        return self.head(h), h, []


class _ConvNet(StudentNet):
    """Two conv blocks (2-D 3x3 on a square image, or 1-D kernel 5 on an ordered signal), pooled; returns the
    conv maps too, for attention transfer."""

    def __init__(self, shape: tuple[int, ...], channels: list[int], num_classes: int) -> None:
        super().__init__()
        c1, c2 = (channels + channels)[:2]
        conv, kernel, pooled = (nn.Conv2d, 3, 2) if len(shape) == 2 else (nn.Conv1d, 5, 4)
        self.shape = shape
        self.conv1 = conv(1, c1, kernel, padding=kernel // 2)
        self.conv2 = conv(c1, c2, kernel, padding=kernel // 2)
        self.pool = nn.AdaptiveAvgPool2d(pooled) if len(shape) == 2 else nn.AdaptiveAvgPool1d(pooled)
        self.feature_dim = c2 * (pooled ** len(shape))
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        a1 = torch.relu(self.conv1(x.view(-1, 1, *self.shape)))
        a2 = torch.relu(self.conv2(a1))
        h = self.pool(a2).flatten(1)
        return self.head(h), h, [a1, a2]


class CNN(_ConvNet):
    """Two 3x3 conv blocks on a square single-channel image."""

    def __init__(self, side: int, channels: list[int], num_classes: int) -> None:
        super().__init__((side, side), channels, num_classes)
        self.side = side


class CNN1D(_ConvNet):
    """Two 1-D conv blocks (kernel 5) over an ordered signal, pooled to 4 positions: for sequences and time series,
    where neighbouring columns are related and an MLP ignores that order."""

    def __init__(self, length: int, channels: list[int], num_classes: int) -> None:
        super().__init__((length,), channels, num_classes)
        self.length = length


ARCHS = ("mlp", "cnn", "cnn1d")


def build(arch: str, in_features: int, hidden: list[int], num_classes: int, side: int | None) -> StudentNet:
    if arch == "cnn":
        if side is None:
            raise ValueError("cnn needs square image inputs")
        return CNN(side, hidden, num_classes)
    if arch == "cnn1d":
        return CNN1D(in_features, hidden, num_classes)
    return MLP(in_features, hidden, num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def size_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def student_hidden_for(
    arch: str, in_features: int, teacher_params: int, ratio: float, num_classes: int, side: int | None, depth: int
) -> list[int]:
    """Widths (all equal, `depth` layers) whose parameter count is closest to teacher_params / ratio."""
    target = teacher_params / ratio
    best, best_gap = [1] * depth, float("inf")
    for width in range(1, 1025):
        hidden = [width] * depth
        params = (
            count_params(build(arch, in_features, hidden, num_classes, side))
            if arch != "mlp"
            else _mlp_params(in_features, hidden, num_classes)
        )
        gap = abs(params - target)
        if gap < best_gap:
            best, best_gap = hidden, gap
        if params > target:
            break
    return best


def _mlp_params(in_features: int, hidden: list[int], num_classes: int) -> int:
    total, width = 0, in_features
    for h in hidden:
        total += width * h + h
        width = h
    return total + width * num_classes + num_classes


# ---- stacked forward: M nets of one architecture at once, weights stacked on a leading dim -----------------------
# Plain batched matmuls (baddbmm) and grouped convolutions: the same arithmetic as M separate forwards, without the
# per-call Python cost of running M modules (or of torch.func.functional_call, which walks the module every call).


def _linear(p: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    return torch.baddbmm(p[f"{name}.bias"].unsqueeze(1), x, p[f"{name}.weight"].transpose(1, 2))


def _conv_forms() -> dict[str, str]:
    """The runner rules' form per architecture. The copy of this module vendored into an exported recipe
    (kd_vendor/nets.py) trains one net, never a stack, and must not import the package (the recipe trains the same
    whatever is installed): there the table is empty."""
    if __package__ != "skill.distill":
        return {}
    from skill.rules import get_rules

    return dict(get_rules().runner["stacked_conv_form"])


# how a stack of M conv nets runs its convolutions, per architecture (runner rules, measured side by side by
# bench/experiment_design.py speed): one grouped convolution (groups = M) on the usual channels-first layout, the same
# on a channels-last (NHWC) layout, or M ordinary convolutions in a loop. CPUs do not run every form fast: oneDNN's
# backward of a grouped 2-D convolution with a few channels per group was about 6x slower channels-first than
# channels-last. Tests and the bench may set an entry.
CONV_FORMS: dict[str, str] = _conv_forms()
FORMS = ("grouped", "channels_last", "loop")


def _grouped_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    conv: Callable[..., torch.Tensor],
    padding: int,
    form: str = "grouped",
) -> torch.Tensor:
    """x [B, M*C_in, ...], weight [M, C_out, C_in, k...]: member m's channels see only member m's filters."""
    M = weight.shape[0]
    if form == "loop":
        c_in = x.shape[1] // M
        return torch.cat(
            [conv(x[:, m * c_in : (m + 1) * c_in], weight[m], bias[m], padding=padding) for m in range(M)], 1
        )
    if form == "channels_last" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)  # the output keeps the layout: relu and pooling follow it
    return conv(x, weight.flatten(0, 1), bias.flatten(), padding=padding, groups=M)


def _to_members(a: torch.Tensor, M: int) -> torch.Tensor:
    """[B, M*C, ...] -> [M, B, C, ...] as a view. A channels-last map is split through its NHWC order, so the gradient
    flowing back keeps that layout (a channels-first gradient made relu's backward and the convolutions' backward
    convert layouts every step, a third of the stack's time)."""
    if a.dim() == 4 and a.is_contiguous(memory_format=torch.channels_last):
        B, _, H, W = a.shape
        return a.permute(0, 2, 3, 1).reshape(B, H, W, M, -1).permute(3, 0, 4, 1, 2)
    return a.view(a.shape[0], M, -1, *a.shape[2:]).transpose(0, 1)


def stacked_forward(
    template: nn.Module, p: dict[str, torch.Tensor], x: torch.Tensor, prefix: str = ""
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(logits [M, B, K], features [M, B, D], maps as [M, B, C, ...]) of the stacked nets on x [M, B, F]."""
    import torch.nn.functional as F

    M, B = x.shape[0], x.shape[1]
    if isinstance(template, MLP):
        h = x
        for j, layer in enumerate(template.body):
            if isinstance(layer, nn.Linear):
                h = torch.relu(_linear(p, f"{prefix}body.{j}", h))
        return _linear(p, f"{prefix}head", h), h, []
    if isinstance(template, CNN):
        side, conv, pool = template.side, F.conv2d, lambda a: F.adaptive_avg_pool2d(a, 2)
        grid = x.transpose(0, 1).reshape(B, M, side, side)
    elif isinstance(template, CNN1D):
        conv, pool = F.conv1d, lambda a: F.adaptive_avg_pool1d(a, 4)
        grid = x.transpose(0, 1).reshape(B, M, template.length)
    else:
        raise TypeError(f"no stacked forward for {type(template).__name__}")
    form = CONV_FORMS["cnn" if isinstance(template, CNN) else "cnn1d"]
    a1 = torch.relu(
        _grouped_conv(
            grid, p[f"{prefix}conv1.weight"], p[f"{prefix}conv1.bias"], conv, int(template.conv1.padding[0]), form
        )
    )
    a2 = torch.relu(
        _grouped_conv(
            a1, p[f"{prefix}conv2.weight"], p[f"{prefix}conv2.bias"], conv, int(template.conv2.padding[0]), form
        )
    )
    h = _to_members(pool(a2), M).flatten(2)
    return _linear(p, f"{prefix}head", h), h, [_to_members(a1, M), _to_members(a2, M)]
