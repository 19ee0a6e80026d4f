"""Label-smoothed cross-entropy over real target tokens only.

`cross_entropy` takes logits; `generator_loss` takes the decoder's attentional vectors and the
output layer and never materializes the N x V logits of the whole batch: it works through
row chunks of a few MB and computes the gradients in the same pass (the "fused linear
cross-entropy" trick). On a CPU this saves the memory traffic of several full-size softmax
passes and the page faults of allocating them, and bounds the loss's memory to one chunk.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt_cli.model.onednn import kernel_rows, matmul
from nmt_cli.model.step_weight import step_dtype
from nmt_cli.special_ids import PAD_ID

CHUNK_ELEMENTS = 1 << 22  # logits per chunk (16 MB in fp32): rows = this / vocabulary size


def cross_entropy(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Summed token-level cross-entropy; padding targets contribute exactly nothing.

    With smoothing e over V classes the per-token loss is
    `(1 - e) * -log p(y) + e * mean_v(-log p(v))` (PyTorch's definition).
    Divide by the number of real target tokens to get the per-token loss.

    Args:
        logits: N x V (or B x T x V) unnormalized scores.
        targets: N (or B x T) token ids; PAD_ID positions are ignored.

    Returns:
        a scalar tensor, the summed loss.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )


def generator_loss(
    hidden: Tensor, generator: nn.Linear, targets: Tensor, label_smoothing: float = 0.0
) -> Tensor:
    """`cross_entropy(generator(hidden), targets, label_smoothing)`, computed chunk by chunk.

    The same value and gradients (up to float rounding), under autocast too: the matrix
    multiplies run in the autocast dtype, the softmax and the loss in fp32.

    Args:
        hidden: N x O attentional vectors; targets: N token ids (PAD_ID rows are ignored).

    Returns:
        the summed loss, a scalar tensor with a gradient to hidden and the generator.
    """
    return _GeneratorLoss.apply(
        hidden,
        generator.weight,
        generator.bias,
        targets,
        label_smoothing,
        step_dtype(generator.weight),
    )


def _chunk(
    hidden: Tensor, targets: Tensor, start: int, rows: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Rows start .. start + rows of the hidden states (in `dtype`) and targets (M x 1).

    A short last chunk is padded with zero states and PAD_ID targets to the row count its
    kernels are cached for (`kernel_rows`, at most `rows`): padding adds nothing to the loss or
    the gradients, and the caller drops its rows of the hidden states' gradient.
    """
    h = hidden[start : start + rows].to(dtype)
    y = targets[start : start + rows]
    pad = min(rows, kernel_rows(h.size(0), h.device, dtype)) - h.size(0)
    if pad > 0:
        h = F.pad(h, (0, 0, 0, pad))
        y = F.pad(y, (0, pad), value=PAD_ID)
    return h, y.unsqueeze(1)


class _GeneratorLoss(torch.autograd.Function):
    """Forward computes the loss and, when a gradient is wanted, the gradients too.

    Per chunk of rows: logits z = h W^T + b, log p = log_softmax(z);
    loss = -(1 - e) log p_y - e mean(log p); dloss/dz = p - (1 - e) onehot(y) - e / V,
    computed in place in log p's buffer.
    """

    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        smoothing: float,
        dtype: torch.dtype,
    ) -> Tensor:
        want_grad = any(ctx.needs_input_grad[:3])
        vocab = weight.size(0)
        rows = max(1, CHUNK_ELEMENTS // vocab)
        w = weight.to(dtype)  # the matmuls' dtype (autocast's, when it is on)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if want_grad else None
        grad_weight = (  # V x O, the parameter's own layout: no transposing copy at the end
            torch.zeros_like(weight, dtype=torch.float32) if want_grad else None
        )
        grad_bias = (
            torch.zeros_like(bias, dtype=torch.float32) if want_grad and bias is not None else None
        )
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.size(0), rows):
                h, y = _chunk(hidden, targets, start, rows, w.dtype)
                z = matmul(h, w.t()).float()
                if bias is not None:
                    z += bias
                real = (y != PAD_ID).float()  # N' x 1
                log_probs = torch.log_softmax(z, dim=1)  # one fused pass (logsumexp takes 3)
                del z
                mean = log_probs.mean(1, True)
                loss = -(1 - smoothing) * log_probs.gather(1, y) - smoothing * mean
                total += (loss * real).sum()
                if grad_hidden is None or grad_weight is None:
                    continue  # no gradient wanted
                dz = log_probs.exp_()  # softmax, in place
                dz.scatter_add_(1, y, torch.full_like(real, smoothing - 1))
                dz.sub_(smoothing / vocab).mul_(real)
                dz_w = dz.to(w.dtype)
                # dz^T h, in the parameter's layout; in fp32 added in as it is computed
                # (addmm_'s beta = 1: no extra pass over the V x O gradient)
                if w.dtype == torch.float32:
                    grad_weight.addmm_(dz_w.t(), h)
                else:
                    grad_weight += matmul(dz_w.t(), h)
                if grad_bias is not None:
                    grad_bias += dz.sum(0)
                grad_hidden[start : start + rows] = matmul(dz_w, w)[: hidden.size(0) - start]
        if want_grad:
            ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
            ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        needs = ctx.needs_input_grad
        return (
            grad_hidden * grad.to(grad_hidden.dtype) if needs[0] else None,
            (grad_weight * grad).to(ctx.weight_dtype) if needs[1] else None,
            grad_bias * grad if needs[2] and grad_bias is not None else None,
            None,
            None,
            None,
        )
