"""Each loss against a value worked by hand on a tiny tensor."""

from __future__ import annotations

import math

import pytest
import torch

from skill.distill import losses


def test_kd_loss_by_hand_and_t_squared():
    student = torch.tensor([[0.0, 0.0]])
    teacher_logits = torch.tensor([[math.log(3.0), 0.0]])  # softmax at T=1: [0.75, 0.25]
    for T in (1.0, 2.0):
        p = torch.softmax(teacher_logits / T, 1)
        # student is uniform: KL(p || u) = sum p log(p / 0.5)
        kl = float((p * (p / 0.5).log()).sum())
        assert float(losses.kd_loss(student, p, T)) == pytest.approx(kl * T * T, rel=1e-5)
    # the T^2 factor: same distributions, twice the temperature, four times the scale
    p = torch.tensor([[0.75, 0.25]])
    s = torch.tensor([[0.3, -0.1]])
    base = float(torch.nn.functional.kl_div(torch.log_softmax(s / 2.0, 1), p, reduction="batchmean"))
    assert float(losses.kd_loss(s, p, 2.0)) == pytest.approx(4 * base, rel=1e-6)


def test_fitnet_hint_by_hand():
    assert float(losses.fitnet_hint(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]))) == pytest.approx(2.5)


def test_attention_transfer_zero_for_equal_and_positive_otherwise():
    a = torch.rand(2, 3, 4, 4)
    assert float(losses.attention_transfer([a], [a.clone()])) == pytest.approx(0.0, abs=1e-7)
    b = torch.zeros(2, 3, 4, 4)
    b[:, :, 0, 0] = 1.0
    c = torch.zeros(2, 3, 4, 4)
    c[:, :, 3, 3] = 1.0
    # maps are one-hot at different places: each squared distance is 1 + 1 = 2, mean over 16 positions
    assert float(losses.attention_transfer([b], [c])) == pytest.approx(2 / 16)


def test_rkd_distance_is_scale_invariant():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    assert float(losses.rkd_distance(x, 3 * x)) == pytest.approx(0.0, abs=1e-7)
    assert float(losses.rkd_distance(x, torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]]))) > 0


def test_rkd_angle_by_hand():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert float(losses.rkd_angle(x, x * 5)) == pytest.approx(0.0, abs=1e-7)


def test_similarity_preserving_by_hand():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # Gram = I -> rows stay [1,0],[0,1]
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # Gram all ones -> rows [0.707, 0.707]
    r = 1 / math.sqrt(2)
    expected = 2 * ((1 - r) ** 2 + r**2) / 4
    assert float(losses.similarity_preserving(s, t)) == pytest.approx(expected, rel=1e-5)


def test_relation_weights_come_from_the_rules():
    from skill.rules import get_rules

    hp = get_rules().method["methods"]["relation"]["hyperparameters"]
    s, t = torch.randn(5, 3), torch.randn(5, 4)
    assert float(losses.RELATION_LOSSES["sp"](s, t)) == pytest.approx(hp["sp_weight"] * float(losses.similarity_preserving(s, t)), rel=1e-5)


def test_dkd_by_hand():
    # 3 classes, target 0. Student uniform; teacher softmax at T=1 is [0.5, 0.25, 0.25].
    s = torch.zeros(1, 3)
    t = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    target = torch.tensor([0])
    # target vs rest: teacher [0.5, 0.5], student [1/3, 2/3]; non-target: both uniform over classes 1 and 2 -> 0
    tckd = 0.5 * math.log(0.5 / (1 / 3)) + 0.5 * math.log(0.5 / (2 / 3))
    assert float(losses.dkd_loss(s, t, target, 1.0, 1.0, 8.0)) == pytest.approx(tckd, rel=1e-5)
    # the non-target term, weighted by beta, sees only how the other classes share their mass
    t2 = torch.log(torch.tensor([[0.5, 0.4, 0.1]]))
    q = torch.tensor([0.8, 0.2])
    nckd = float((q * (q / 0.5).log()).sum())
    tckd2 = tckd  # the target's share is unchanged
    assert float(losses.dkd_loss(s, t2, target, 1.0, 1.0, 8.0)) == pytest.approx(tckd2 + 8.0 * nckd, rel=1e-4)
    assert float(losses.dkd_loss(t2, t2, target, 4.0, 1.0, 8.0)) == pytest.approx(0.0, abs=1e-6)
