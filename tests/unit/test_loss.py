"""The loss: padding contributes nothing; label smoothing follows its formula."""

from __future__ import annotations

import math

import torch

from nmt_cli.loss import cross_entropy
from nmt_cli.tokenizer import PAD_ID


def test_padding_contributes_nothing() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7, requires_grad=True)
    targets = torch.tensor([[4, 5, 6, 3], [4, 3, PAD_ID, PAD_ID]])
    loss = cross_entropy(logits, targets, 0.1)
    real = torch.cat([logits[0], logits[1, :2]])
    expected = cross_entropy(real, torch.tensor([4, 5, 6, 3, 4, 3]), 0.1)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad[1, 2:] == 0)


def test_label_smoothing_matches_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0]])
    eps = 0.3
    log_p = [
        2.0 - math.log(math.exp(2) + 1 + math.exp(1)),
        -math.log(math.exp(2) + 1 + math.exp(1)),
    ]
    log_p.append(1.0 + log_p[1])
    # target 2: (1 - eps) * -log p(2) + eps * mean over the 3 classes of -log p(v)
    expected = (1 - eps) * -log_p[2] + eps * -sum(log_p) / 3
    got = cross_entropy(logits, torch.tensor([2]), eps)
    assert abs(got.item() - expected) < 1e-6
    assert abs(cross_entropy(logits, torch.tensor([2])).item() + log_p[2]) < 1e-6
