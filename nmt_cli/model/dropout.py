"""Dropout that is cheap on the CPU.

`nn.Dropout` on the CPU draws its mask with `bernoulli_`, several times a uniform draw's cost,
and the decoder calls it twice per step: this one compares one uniform draw per element
instead (the same distribution). On CUDA it defers to PyTorch's fused kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p)."""
    if not training or p == 0.0:
        return x
    if x.is_cuda or p == 1.0:
        return nn.functional.dropout(x, p, training)
    keep = torch.rand(x.shape, device=x.device) >= p  # fp32 draws, also for bf16 inputs
    return x * keep * (1.0 / (1.0 - p))


class Dropout(nn.Module):
    """`nn.Dropout` with `dropout` above (no parameters, so checkpoints are unaffected)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
