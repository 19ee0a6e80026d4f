"""A weight used at every step of a recurrence, whose gradient is one matmul for all steps.

Autograd computes a per-step matmul's weight gradient at every step: a (out x N) @ (N x in)
product with a small inner size N (the batch), added into a full-size gradient buffer. With
T decoder steps per batch that is T inefficient products and T read-modify-writes of
every full-size weight gradient. Here each step's
backward computes only the input gradient and keeps (input, output gradient); when every step
is done, autograd reaches the weight's own node, which computes the gradient as one product
over all steps at once: the same sum, in one efficient matmul.

On the CPU the step matmuls use W and W^T packed for oneDNN once per pass (`onednn.py`),
faster than the BLAS at a batch's few hundred rows. `kernels.pass_kernels` builds these
weights, once per teacher-forced pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from nmt_cli.model.onednn import available, kernel_rows, matmul, pack, packed_linear

Pairs = list[tuple[Tensor, Tensor]]  # per step: (input N x in, output gradient N x out)


class StepWeight:
    """`weight` (out x in) for one forward pass over a sequence: `step_weight(x)` = x W^T.

    Without gradients (inference, validation) it is a plain matmul.
    """

    def __init__(self, weight: Tensor) -> None:
        self.pairs: Pairs = []
        self.deferred = torch.is_grad_enabled() and weight.requires_grad
        self.weight = (
            DeferredGradient.apply(weight, self.pairs, _weight_gradient)
            if self.deferred
            else weight
        )
        self.dtype = step_dtype(weight)  # what the steps multiply in
        self.packed = _pack_both(weight, self.dtype) if self.deferred else None

    def __call__(self, x: Tensor) -> Tensor:
        """x: N x in -> N x out, in the autocast dtype when autocast is on."""
        if not self.deferred:
            return torch.nn.functional.linear(x, self.weight)
        return _StepMatmul.apply(x, self.weight, self.pairs, self.packed)


Packed = tuple[Tensor, Tensor]  # W and W^T in oneDNN's layout


def step_dtype(x: Tensor) -> torch.dtype:
    """The dtype products with `x` compute in: autocast's on x's device when it is on, else
    x's own."""
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype


def _pack_both(weight: Tensor, dtype: torch.dtype) -> Packed | None:
    """W and W^T packed in `dtype`, the one the steps compute in, or None where oneDNN is not
    `available`."""
    if not available(weight.device, dtype):
        return None
    w = weight.detach().to(dtype)
    return pack(w), pack(w.t())


class DeferredGradient(torch.autograd.Function):
    """Identity on a tensor that every step of a sequence multiplies with.

    `DeferredGradient.apply(x, pairs, total)`: the steps' backwards return no gradient for x
    and append their two factors to `pairs`; this node's backward, which autograd reaches
    after all of theirs, returns `total(pairs)`, the whole gradient in one product (here for
    a weight, in `step_memory.py` for the encoder states).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, pairs: Pairs, total: Callable[[Pairs], Tensor]) -> Tensor:
        ctx.pairs, ctx.total, ctx.dtype = pairs, total, x.dtype
        ctx.set_materialize_grads(False)  # every step returns no gradient for x
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, _: Tensor | None) -> tuple[Tensor | None, None, None]:
        pairs: Pairs = ctx.pairs
        if not pairs:
            return None, None, None
        grad = ctx.total(pairs)
        pairs.clear()
        return grad.to(ctx.dtype), None, None


def _weight_gradient(pairs: Pairs) -> Tensor:
    """The sum over steps of grad^T x, as one matmul: out x in.

    The steps' rows are padded with zero rows (which add nothing) to the count `kernel_rows`
    gives, so that the product's shape recurs from batch to batch.
    """
    dtype = pairs[0][1].dtype
    inputs = [x.to(dtype) for x, _ in pairs]  # each N x in
    grads = [g for _, g in pairs]  # each N x out
    rows = sum(x.size(0) for x in inputs)
    pad = kernel_rows(rows, grads[0].device, dtype) - rows
    if pad:
        inputs.append(inputs[0].new_zeros(pad, inputs[0].size(1)))
        grads.append(grads[0].new_zeros(pad, grads[0].size(1)))
    return matmul(torch.cat(grads).t(), torch.cat(inputs))


class _StepMatmul(torch.autograd.Function):
    """x W^T whose backward returns the input gradient and leaves the weight's to
    `DeferredGradient`."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, pairs: Pairs, packed: Packed | None) -> Tensor:
        if packed is None:
            out = torch.nn.functional.linear(x, weight)  # autocast applies here
        else:
            x = x.to(packed[0].dtype)
            out = packed_linear(x, packed[0], None)
        ctx.save_for_backward(x.to(out.dtype), weight)
        ctx.pairs, ctx.packed = pairs, packed
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        x, weight = ctx.saved_tensors
        ctx.pairs.append((x, grad))
        if ctx.packed is None:
            return grad @ weight.to(grad.dtype), None, None, None
        return packed_linear(grad, ctx.packed[1], None), None, None, None
