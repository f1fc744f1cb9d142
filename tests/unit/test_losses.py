"""SimCSE InfoNCE loss checked against hand computations on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from simcse_rag.losses import simcse_loss


def _cos(u, v):
    return sum(a * b for a, b in zip(u, v, strict=True)) / (
        math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v))
    )


def _hand_infonce(anchors, candidates, target, t, bonus=None):
    """-log softmax of plain-Python cosines; ``bonus[j]`` is added to logit j."""
    losses = []
    for i, a in enumerate(anchors):
        logits = [_cos(a, c) / t for c in candidates[i]]
        if bonus is not None:
            logits = [lg + b for lg, b in zip(logits, bonus[i], strict=True)]
        denom = sum(math.exp(lg) for lg in logits)
        losses.append(-(logits[target[i]] - math.log(denom)))
    return sum(losses) / len(losses)


A = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]]
P = [[0.9, 0.1, 0.0], [0.1, 1.0, 0.3], [0.5, 0.4, 0.6]]
N = [[0.0, 0.0, 1.0], [1.0, 0.2, 0.0], [0.3, -1.0, 0.2]]


def test_pairs_match_hand_computation():
    t = 0.5
    expected = _hand_infonce(A, [P] * 3, [0, 1, 2], t)
    got = simcse_loss(torch.tensor(A), torch.tensor(P), temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_triplets_use_all_hard_negatives_as_candidates():
    t = 0.1
    expected = _hand_infonce(A, [P + N] * 3, [0, 1, 2], t)
    got = simcse_loss(torch.tensor(A), torch.tensor(P), torch.tensor(N), temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # 3-D (B, K=1, d) layout is the same thing
    got3 = simcse_loss(
        torch.tensor(A), torch.tensor(P), torch.tensor(N).unsqueeze(1), temperature=t
    )
    assert got3.item() == pytest.approx(expected, rel=1e-5)


def test_hard_negative_weight_is_added_to_own_negative_logit_only():
    t, w = 0.2, 1.5
    bonus = [[0, 0, 0] + [w if j == i else 0 for j in range(3)] for i in range(3)]
    expected = _hand_infonce(A, [P + N] * 3, [0, 1, 2], t, bonus)
    got = simcse_loss(
        torch.tensor(A), torch.tensor(P), torch.tensor(N), temperature=t, hard_negative_weight=w
    )
    assert got.item() == pytest.approx(expected, rel=1e-5)
    plain = simcse_loss(torch.tensor(A), torch.tensor(P), torch.tensor(N), temperature=t)
    assert got.item() > plain.item()  # a positive weight makes own negatives harder


def test_several_negatives_per_anchor_with_owner():
    t = 0.3
    negs = N + [[0.2, 0.2, -0.5]]
    owner = torch.tensor([0, 0, 2, 2])  # anchor 1 owns none
    w = 0.7
    bonus = [[0.0] * 3 + [w if o == i else 0.0 for o in owner.tolist()] for i in range(3)]
    expected = _hand_infonce(A, [P + negs] * 3, [0, 1, 2], t, bonus)
    got = simcse_loss(
        torch.tensor(A),
        torch.tensor(P),
        torch.tensor(negs),
        negative_owner=owner,
        temperature=t,
        hard_negative_weight=w,
    )
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_symmetric_averages_both_directions():
    t = 0.25
    forward = _hand_infonce(A, [P] * 3, [0, 1, 2], t)
    backward = _hand_infonce(P, [A] * 3, [0, 1, 2], t)
    got = simcse_loss(torch.tensor(A), torch.tensor(P), temperature=t, symmetric=True)
    assert got.item() == pytest.approx((forward + backward) / 2, rel=1e-5)


def test_unsupervised_identical_views_and_temperature():
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    # identical views: lower temperature sharpens the softmax on the diagonal -> lower loss
    assert simcse_loss(x, x, temperature=0.05) < simcse_loss(x, x, temperature=1.0)
    # scale-invariant (cosine)
    assert simcse_loss(x, 3 * x).item() == pytest.approx(simcse_loss(x, x).item(), rel=1e-5)


def test_gradients_flow_to_all_inputs():
    a, p, n = (torch.randn(4, 8, requires_grad=True) for _ in range(3))
    simcse_loss(a, p, n).backward()
    assert all(g is not None and g.abs().sum() > 0 for g in (a.grad, p.grad, n.grad))


def test_bad_shapes_and_temperature():
    a = torch.randn(3, 4)
    with pytest.raises(ValueError, match="temperature"):
        simcse_loss(a, a, temperature=0)
    with pytest.raises(ValueError, match="anchors and positives"):
        simcse_loss(a, torch.randn(2, 4))
    with pytest.raises(ValueError, match="negative_owner"):
        simcse_loss(a, a, torch.randn(4, 4))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        simcse_loss(a, a, torch.randn(2, 4), negative_owner=torch.tensor([0, 5]))
