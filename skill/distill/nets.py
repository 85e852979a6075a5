"""Small networks for the runner: an MLP and a CNN that also return their features for hint losses."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
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


class CNN(nn.Module):
    """Two 3x3 conv blocks on a square single-channel image; also returns the conv maps for attention transfer."""

    def __init__(self, side: int, channels: list[int], num_classes: int) -> None:
        super().__init__()
        c1, c2 = (channels + channels)[:2]
        self.side = side
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.feature_dim = c2 * 4
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        a1 = torch.relu(self.conv1(x.view(-1, 1, self.side, self.side)))
        a2 = torch.relu(self.conv2(a1))
        h = self.pool(a2).flatten(1)
        return self.head(h), h, [a1, a2]


def build(arch: str, in_features: int, hidden: list[int], num_classes: int, side: int | None) -> nn.Module:
    if arch == "cnn":
        if side is None:
            raise ValueError("cnn needs square image inputs")
        return CNN(side, hidden, num_classes)
    return MLP(in_features, hidden, num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def size_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def student_hidden_for(arch: str, in_features: int, teacher_params: int, ratio: float, num_classes: int, side: int | None, depth: int) -> list[int]:
    """Widths (all equal, `depth` layers) whose parameter count is closest to teacher_params / ratio."""
    target = teacher_params / ratio
    best, best_gap = [1] * depth, float("inf")
    for width in range(1, 1025):
        hidden = [width] * depth
        params = count_params(build(arch, in_features, hidden, num_classes, side)) if arch == "cnn" else _mlp_params(in_features, hidden, num_classes)
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
