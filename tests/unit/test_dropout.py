"""The CPU dropout: right rate, unbiased, identity in eval mode, gradient through kept units."""

from __future__ import annotations

import torch

from nmt_cli.model.dropout import Dropout


def test_drops_at_the_rate_and_keeps_the_mean() -> None:
    torch.manual_seed(0)
    layer = Dropout(0.3)
    x = torch.ones(1000, 1000, requires_grad=True)
    y = layer(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.3) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.01
    y.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, y.detach())  # 1 / 0.7 where kept, 0 where dropped


def test_eval_mode_and_zero_rate_are_the_identity() -> None:
    x = torch.randn(4, 5)
    assert Dropout(0.5).eval()(x) is x
    assert Dropout(0.0)(x) is x


def test_bf16_input_keeps_its_dtype() -> None:
    x = torch.ones(100, 100, dtype=torch.bfloat16)
    assert Dropout(0.3)(x).dtype == torch.bfloat16
