"""Distillation losses: each a small pure function with its citation; registered by name."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_probs_T: torch.Tensor, T: float) -> torch.Tensor:
    """Hinton et al. 2015: KL(teacher_T || student_T) * T^2 (the T^2 keeps gradients comparable across T)."""
    log_p = F.log_softmax(student_logits / T, dim=1)
    return F.kl_div(log_p, teacher_probs_T, reduction="batchmean") * T * T


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    T: float | torch.Tensor,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """Zhao et al. 2022 (DKD): alpha * target-class KD (binary: target vs rest) + beta * non-target KD, each times T^2.

    Logits [B, C] give a scalar; a stack [M, B, C] with one T per model ([M]) gives [M]."""
    T = torch.as_tensor(T, dtype=student_logits.dtype)
    t = T.view(-1, 1, 1) if T.dim() else T
    gt = F.one_hot(target, student_logits.shape[-1]).to(student_logits.dtype)
    p_s, p_t = F.softmax(student_logits / t, dim=-1), F.softmax(teacher_logits / t, dim=-1)
    binary_s = torch.stack([(p_s * gt).sum(-1), (p_s * (1 - gt)).sum(-1)], dim=-1)
    binary_t = torch.stack([(p_t * gt).sum(-1), (p_t * (1 - gt)).sum(-1)], dim=-1)
    tckd = (torch.xlogy(binary_t, binary_t) - binary_t * binary_s.clamp_min(1e-12).log()).sum(-1).mean(-1)
    # non-target distributions: renormalised over the other classes (the target logit masked out)
    log_q_s = F.log_softmax(student_logits / t - 1000.0 * gt, dim=-1)
    log_q_t = F.log_softmax(teacher_logits / t - 1000.0 * gt, dim=-1)
    nckd = (log_q_t.exp() * (log_q_t - log_q_s)).sum(-1).mean(-1)
    return (alpha * tckd + beta * nckd) * T * T


def kd_per_member(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """kd_loss (Hinton et al. 2015) for a stack of models at once: logits [M, B, C], one T per model [M]; gives [M]."""
    t = T.view(-1, 1, 1)
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=-1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean(-1) * T * T


def ce_per_member(logits: torch.Tensor, labels: torch.Tensor, has_label: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the labelled rows of each model's batch: logits [M, B, C]; returns [M] (0 without labels)."""
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    weight = has_label.to(ce.dtype)
    return (ce * weight).sum(-1) / weight.sum(-1).clamp_min(1)


def fitnet_hint(student_feat_projected: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Romero et al. 2015 (FitNets): mean squared error between a projected student layer and a teacher layer."""
    return F.mse_loss(student_feat_projected, teacher_feat)


def _attention_map(a: torch.Tensor) -> torch.Tensor:
    return F.normalize(a.pow(2).mean(1).flatten(1), dim=1)


def attention_transfer(student_maps: list[torch.Tensor], teacher_maps: list[torch.Tensor]) -> torch.Tensor:
    """Zagoruyko and Komodakis 2017: distance between normalised spatial attention maps, layer by layer. A teacher
    with more (or fewer) maps than the student is paired layer by layer from the first; the rest are left out."""
    pairs = zip(student_maps, teacher_maps, strict=False)  # not strict: a user's teacher may have another depth
    per_layer = [(_attention_map(s) - _attention_map(t)).pow(2).mean() for s, t in pairs]
    return functools.reduce(operator.add, per_layer, torch.zeros(()))


def _pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    sq = (x.unsqueeze(0) - x.unsqueeze(1)).pow(2).sum(-1)
    positive = sq > 0
    d = torch.where(positive, sq.clamp_min(1e-12).sqrt(), torch.zeros_like(sq))  # no NaN gradient on the diagonal
    mean = d.sum() / positive.sum().clamp_min(1)  # mean of the positive distances, without data-dependent shapes (vmap)
    return d / torch.where(mean > 0, mean, torch.ones_like(mean))


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
    # skill is absent where this file is vendored (an exported recipe's kd_vendor/); only the runner calls this
    from skill.rules import get_rules

    return float(get_rules().method["methods"]["relation"]["hyperparameters"][name])


RELATION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "rkd": lambda s, t: (
        _relation_weight("rkd_distance_weight") * rkd_distance(s, t)
        + _relation_weight("rkd_angle_weight") * rkd_angle(s, t)
    ),
    "sp": lambda s, t: _relation_weight("sp_weight") * similarity_preserving(s, t),
}
