"""Tests for nerkit.losses: weighted cross-entropy and focal loss with -100 targets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nerkit.losses import IGNORE, token_loss


def _batch(seed: int = 0, num_labels: int = 5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 7, num_labels, generator=g) * 3
    labels = torch.randint(0, num_labels, (3, 7), generator=g)
    labels[:, 0] = IGNORE
    labels[1, 4:] = IGNORE
    weights = torch.rand(num_labels, generator=g) * 10 + 0.1
    return logits, labels, weights


def test_gamma_zero_is_torch_weighted_cross_entropy():
    # Focal with gamma=0 equals F.cross_entropy(weight=..., ignore_index=-100).
    logits, labels, weights = _batch()
    expected = F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1), weight=weights, ignore_index=IGNORE)
    assert token_loss(logits, labels, weights, gamma=0.0) == pytest.approx(float(expected), rel=1e-6)
    unweighted = F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1), ignore_index=IGNORE)
    assert token_loss(logits, labels) == pytest.approx(float(unweighted), rel=1e-6)


def test_focal_limit_is_weighted_ce():
    # A vanishing gamma gives the weighted-CE value; a positive gamma gives less.
    logits, labels, weights = _batch(1)
    ce = float(token_loss(logits, labels, weights, gamma=0.0))
    assert float(token_loss(logits, labels, weights, gamma=1e-9)) == pytest.approx(ce, rel=1e-6)
    assert float(token_loss(logits, labels, weights, gamma=2.0)) < ce


def test_focal_value_by_hand():
    # p_t comes from the unweighted softmax; weights only average the per-token terms.
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    labels = torch.tensor([0, 2, IGNORE])
    weights = torch.tensor([1.0, 3.0, 4.0])
    p0 = math.exp(2) / (math.exp(2) + 2)         # token 0, class 0
    p1 = 1 / (2 + math.e)                         # token 1, class 2
    terms = [-(1 - p0) ** 2 * math.log(p0), -(1 - p1) ** 2 * math.log(p1)]
    expected = (1.0 * terms[0] + 4.0 * terms[1]) / (1.0 + 4.0)
    assert float(token_loss(logits, labels, weights, gamma=2.0)) == pytest.approx(expected, rel=1e-6)


def test_all_ignored_batch_is_zero_and_backward_works():
    # A batch with no counted token gives 0 (not NaN) for CE and focal, and gradients exist.
    for gamma in (0.0, 2.0):
        logits = torch.randn(2, 4, 3, requires_grad=True)
        loss = token_loss(logits, torch.full((2, 4), IGNORE), torch.tensor([1.0, 2.0, 3.0]), gamma)
        assert float(loss.detach()) == 0.0
        loss.backward()
        assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


def test_loss_ignores_values_at_ignored_positions():
    # Changing logits where the label is -100 does not change the loss.
    logits, labels, weights = _batch(2)
    changed = logits.clone()
    changed[labels == IGNORE] = 100.0
    for gamma in (0.0, 2.0):
        assert float(token_loss(changed, labels, weights, gamma)) == pytest.approx(
            float(token_loss(logits, labels, weights, gamma)), rel=1e-6)


def test_scaled_weights_give_same_loss_and_gradients():
    # A weighted mean: 7*w gives the same loss and gradients as w.
    logits, labels, weights = _batch(3)
    grads = []
    for w in (weights, 7 * weights):
        x = logits.clone().requires_grad_(True)
        loss = token_loss(x, labels, w, gamma=2.0)
        loss.backward()
        grads.append((float(loss.detach()), x.grad))
    assert grads[1][0] == pytest.approx(grads[0][0], rel=1e-6)
    torch.testing.assert_close(grads[1][1], grads[0][1])


def test_negative_gamma_raises():
    # gamma < 0 is a ValueError naming the value.
    logits, labels, _ = _batch()
    with pytest.raises(ValueError, match="-0.5"):
        token_loss(logits, labels, gamma=-0.5)


@pytest.mark.parametrize("gamma", [0.3, 0.5, 0.9])
def test_focal_gradient_is_finite_when_p_t_rounds_to_one(gamma):
    # gamma in (0, 1) (the search samples from 0.5): a token whose p_t rounds to 1.0 in fp32
    # (logit 20 ahead) used to give a NaN gradient for the whole batch though the loss was finite.
    logits = torch.tensor([[20.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    loss = token_loss(logits, labels, torch.tensor([1.0, 2.0, 3.0]), gamma)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    # The confident token contributes (almost) nothing; the other one gets the focal gradient.
    assert logits.grad[0].abs().max() < 1e-6
    x = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    log_p = torch.log_softmax(x, -1)[1]
    (-(1 - log_p.exp()) ** gamma * log_p * 2.0 / 3.0).backward()  # weight 2 of weight sum 1 + 2
    torch.testing.assert_close(logits.grad[1].double(), x.grad, rtol=1e-5, atol=1e-6)
