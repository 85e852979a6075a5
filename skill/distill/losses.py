"""Distillation losses: each a small pure function with its citation; registered by name."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_probs_T: torch.Tensor, T: float) -> torch.Tensor:
    """Hinton et al. 2015: KL(teacher_T || student_T) * T^2 (the T^2 keeps gradients comparable across T)."""
    log_p = F.log_softmax(student_logits / T, dim=1)
    return F.kl_div(log_p, teacher_probs_T, reduction="batchmean") * T * T


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, T: float, alpha: float, beta: float) -> torch.Tensor:
    """Zhao et al. 2022 (DKD): alpha * target-class KD (binary: target vs rest) + beta * non-target KD, each times T^2."""
    gt = F.one_hot(target, student_logits.shape[1]).bool()
    p_s, p_t = F.softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1)
    binary_s = torch.stack([p_s[gt], p_s.masked_fill(gt, 0).sum(1)], dim=1)
    binary_t = torch.stack([p_t[gt], p_t.masked_fill(gt, 0).sum(1)], dim=1)
    tckd = F.kl_div(binary_s.clamp_min(1e-12).log(), binary_t, reduction="batchmean") * T * T
    # non-target distributions: renormalised over the other classes (the target logit masked out)
    log_q_s = F.log_softmax(student_logits / T - 1000.0 * gt, dim=1)
    q_t = F.softmax(teacher_logits / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_q_s, q_t, reduction="batchmean") * T * T
    return alpha * tckd + beta * nckd


def fitnet_hint(student_feat_projected: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Romero et al. 2015 (FitNets): mean squared error between a projected student layer and a teacher layer."""
    return F.mse_loss(student_feat_projected, teacher_feat)


def _attention_map(a: torch.Tensor) -> torch.Tensor:
    return F.normalize(a.pow(2).mean(1).flatten(1), dim=1)


def attention_transfer(student_maps: list[torch.Tensor], teacher_maps: list[torch.Tensor]) -> torch.Tensor:
    """Zagoruyko and Komodakis 2017: distance between normalised spatial attention maps, layer by layer."""
    return sum((_attention_map(s) - _attention_map(t)).pow(2).mean() for s, t in zip(student_maps, teacher_maps))  # type: ignore[return-value]


def _pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x, x)
    mean = d[d > 0].mean() if (d > 0).any() else d.new_tensor(1.0)
    return d / mean


def rkd_distance(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Park et al. 2019 (RKD-D): Huber loss between mean-normalised pairwise distance matrices."""
    return F.smooth_l1_loss(_pairwise_distances(student_feat), _pairwise_distances(teacher_feat))


def _angles(x: torch.Tensor) -> torch.Tensor:
    e = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2, dim=2)
    return torch.bmm(e, e.transpose(1, 2)).flatten()


def rkd_angle(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Park et al. 2019 (RKD-A): Huber loss between the cosines of angles formed by sample triplets."""
    return F.smooth_l1_loss(_angles(student_feat), _angles(teacher_feat))


def similarity_preserving(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Tung and Mori 2019: squared Frobenius distance between row-normalised batch Gram matrices, over b^2."""
    gs = F.normalize(student_feat @ student_feat.t(), dim=1)
    gt = F.normalize(teacher_feat @ teacher_feat.t(), dim=1)
    b = student_feat.shape[0]
    return (gs - gt).pow(2).sum() / (b * b)


FEATURE_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"fitnet": fitnet_hint, "attention": attention_transfer}


def _relation_weight(name: str) -> float:
    from skill.rules import get_rules

    return float(get_rules().method["methods"]["relation"]["hyperparameters"][name])


RELATION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "rkd": lambda s, t: _relation_weight("rkd_distance_weight") * rkd_distance(s, t) + _relation_weight("rkd_angle_weight") * rkd_angle(s, t),
    "sp": lambda s, t: _relation_weight("sp_weight") * similarity_preserving(s, t),
}
