"""`gates.tanh`: torch.tanh's values and gradients, bitwise, on its fast bf16 path too."""

from __future__ import annotations

import pytest
import torch

from nmt_cli.model.gates import tanh


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tanh_equals_torch_tanh_values_and_gradients(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    # wide enough to reach saturation, where a wrong rounding would show
    x = (torch.randn(140, 2048) * 4).to(dtype)
    grad = torch.randn(140, 2048).to(dtype)
    mine, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = tanh(mine), torch.tanh(theirs)
    assert out.dtype == dtype and torch.equal(out, expected)
    out.backward(grad)
    expected.backward(grad)
    assert mine.grad is not None and torch.equal(mine.grad, theirs.grad)
    with torch.no_grad():  # the fast path
        assert torch.equal(tanh(x), torch.tanh(x))
    assert torch.equal(tanh(x), torch.tanh(x))  # no gradient asked: the fast path too
