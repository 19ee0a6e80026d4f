"""Encoder states that every decoder step reads, whose gradient is one bmm for all steps.

The dot and general attentions multiply the keys (for the scores) and the encoder states (for
the context) at every decoder step. Autograd would write each step's full B x S x H gradient
for both and add it to a running sum: T products and T read-modify-writes of the largest
tensors of the step. As `step_weight.py` does for the decoder's weights, each step's backward
here keeps its two small factors (B x G x S and B x G x H), and when every step is done,
autograd reaches the tensor's own node, which computes the sum as one bmm over all steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nmt_cli.model.attention import Attention, DotAttention, masked_softmax
from nmt_cli.model.step_weight import DeferredGradient, step_dtype

Pairs = list[tuple[Tensor, Tensor]]  # per step: (B x G x S, B x G x H), summed as A^T B


class StepMemory:
    """A B x S x H tensor that the steps of one teacher-forced pass multiply with.

    It is cast once to the dtype the steps compute in (autocast's, when it is on), as autocast
    would cast it at every step.
    """

    def __init__(self, x: Tensor) -> None:
        self.pairs: Pairs = []
        self.tensor = DeferredGradient.apply(x.to(step_dtype(x)), self.pairs, _memory_gradient)

    def scores(self, query: Tensor) -> Tensor:
        """query B x G x H -> B x G x S: query x^T."""
        return _Scores.apply(query.to(self.tensor.dtype), self.tensor, self.pairs)

    def context(self, weights: Tensor) -> Tensor:
        """weights B x G x S -> B x G x H: weights x."""
        return _Context.apply(weights.to(self.tensor.dtype), self.tensor, self.pairs)


class PassAttention:
    """A dot or general attention for one teacher-forced pass: `Attention.forward`'s
    arguments and results, with the keys and encoder states as `StepMemory`s."""

    def __init__(self, keys: Tensor, memory: Tensor) -> None:
        self.keys, self.memory = StepMemory(keys), StepMemory(memory)

    def __call__(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """As `Attention.forward`; keys and memory are the pass's own (given at the start)."""
        batch, n = keys.size(0), query.size(0)
        grouped = query.view(batch, n // batch, query.size(-1))  # B x G x Hd
        weights = masked_softmax(self.keys.scores(grouped), mask)  # B x G x S
        context = self.memory.context(weights)  # B x G x He
        return context.view(n, -1), weights.view(n, -1)


def pass_attention(attention: Attention, keys: Tensor, memory: Tensor) -> Any:
    """The attention one teacher-forced pass with gradients runs: `PassAttention` for dot and
    general (the bmm-based ones, in the model's own dtype), the module itself otherwise."""
    if isinstance(attention, DotAttention) and attention.step_dtype is None:
        return PassAttention(keys, memory)
    return attention


def _memory_gradient(pairs: Pairs) -> Tensor:
    """The sum over steps of A^T B, as one bmm: B x S x H."""
    left = torch.cat([a for a, _ in pairs], dim=1)  # B x (steps * G) x S
    right = torch.cat([b for _, b in pairs], dim=1)  # B x (steps * G) x H
    return torch.bmm(left.transpose(1, 2), right)


class _Scores(torch.autograd.Function):
    """query x^T; the backward returns the query's gradient and leaves x's to
    `DeferredGradient`."""

    @staticmethod
    def forward(ctx: Any, query: Tensor, x: Tensor, pairs: Pairs) -> Tensor:
        ctx.save_for_backward(query, x)
        ctx.pairs = pairs
        return torch.bmm(query, x.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        query, x = ctx.saved_tensors
        grad = grad.to(x.dtype)
        ctx.pairs.append((grad, query))  # d(x) += grad^T query
        return torch.bmm(grad, x), None, None


class _Context(torch.autograd.Function):
    """weights x; the backward returns the weights' gradient and leaves x's to
    `DeferredGradient`."""

    @staticmethod
    def forward(ctx: Any, weights: Tensor, x: Tensor, pairs: Pairs) -> Tensor:
        ctx.save_for_backward(weights, x)
        ctx.pairs = pairs
        return torch.bmm(weights, x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        weights, x = ctx.saved_tensors
        grad = grad.to(x.dtype)
        ctx.pairs.append((weights, grad))  # d(x) += weights^T grad
        return torch.bmm(grad, x.transpose(1, 2)), None, None
