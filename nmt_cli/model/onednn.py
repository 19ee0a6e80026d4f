"""Float matmuls on the CPU through oneDNN, PyTorch's own deep-learning kernel library.

PyTorch sends CPU fp32 matmuls to its BLAS (MKL). At our shapes (small batches of rows against
large weights) oneDNN's kernels are faster with the same fp32 arithmetic, fastest with the
weight packed in their blocked layout (benchmarks/README.md has the measurements): results
differ from the BLAS only in summation order (~1e-6 relative). bf16 goes the same way.

- Inference: `pack_for_inference` swaps a model's nn.Linear and nn.LSTMCell modules for packed
  copies, one reorder per weight when a model is moved to its precision.
- Training: `matmul` for the big products of the loss and the weight gradients (those with a
  transposed left factor go to the BLAS, see `matmul`), and `pack` once per batch for the
  decoder's per-step weights (`step_weight.py`).

In bf16, oneDNN generates code for every new matmul shape; row counts that change from batch
to batch or step to step are padded with zero rows to a few recurring ones (`kernel_rows`).

`NMT_ONEDNN=0` in the environment keeps PyTorch's default kernels (for A/B comparisons). It is
read once, when this module is first imported, into `ENABLED`: set it before starting Python.
"""

from __future__ import annotations

import functools
import os
from typing import TypeVar

import torch
from torch import Tensor, nn

from nmt_cli.model.gates import cell_update

# Whether oneDNN may be used at all: the environment is read once, here, never per call.
ENABLED: bool = os.environ.get("NMT_ONEDNN", "1") != "0"

# Rows the packed layout is tuned for; any row count works (a batch's rows are in the tens).
_ROWS_HINT = 64

# oneDNN builds a bf16 kernel for every new matmul shape (its AMX / AVX-512 code is generated
# for the exact sizes): 20-30 ms for a loss chunk's product with the vocabulary, against 3-4 ms
# to run it. A batch's row counts (the last loss chunk, all steps' rows) are new every step;
# rounded up to a multiple of this with zero rows, they come from a few sizes that stay cached.
# fp32 kernels cost nothing to build, and CUDA builds none: their row counts stay as they are.
ROW_QUANTUM = 64
# The same for inference, where a search's row count (live sentences or hypotheses) changes
# step by step: its matmuls read the whole weight whatever the rows, so a few zero rows cost
# little, and a finer quantum keeps that little smaller.
INFERENCE_ROW_QUANTUM = 16

M = TypeVar("M", bound=nn.Module)


def available(device: torch.device, dtype: torch.dtype) -> bool:
    """Can (and should) float matmuls for `device` and `dtype` go through oneDNN here?"""
    return (
        ENABLED
        and device.type == "cpu"
        and dtype in (torch.float32, torch.bfloat16)
        and _ops_present()
    )


@functools.cache
def _ops_present() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:  # private ops (the ones torch.compile's CPU backend uses); absent on some builds
        torch.ops.mkldnn._reorder_linear_weight  # noqa: B018
        torch.ops.mkldnn._linear_pointwise  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


def kernel_rows(
    rows: int, device: torch.device, dtype: torch.dtype, quantum: int = ROW_QUANTUM
) -> int:
    """The row count to hand a `device` matmul in `dtype` for `rows` real rows: rounded up to a
    multiple of `quantum` (the caller pads with zero rows) where the kernels are built per
    shape, `rows` elsewhere."""
    if device.type != "cpu" or dtype not in (torch.bfloat16, torch.float16):
        return rows
    return -(-rows // quantum) * quantum


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b for a: M x K and b: K x N of one dtype, through oneDNN where `available` and `a`
    is contiguous. A transposed `a` (a weight gradient's xᵀ) goes to torch.mm: the BLAS reads
    it in place, where oneDNN would first copy it (a slow transposing copy)."""
    if available(a.device, a.dtype) and a.is_contiguous():
        return torch.ops.mkldnn._linear_pointwise(a, b.t(), None, "none", [], "")
    return a @ b


def pack(weight: Tensor) -> Tensor:
    """An out x in weight in oneDNN's blocked layout (an opaque mkldnn tensor, no gradient)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), _ROWS_HINT)


def packed_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x W^T + b with a `pack`ed W. x: ... x in -> ... x out."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def padded_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """`packed_linear` for inference, x's rows padded to `kernel_rows`' count (quantum
    `INFERENCE_ROW_QUANTUM`) with zeros, so that a search's kernels recur; the padded rows'
    results are dropped. x: ... x in -> ... x out."""
    rows = x.numel() // x.size(-1)
    padded = kernel_rows(rows, x.device, x.dtype, INFERENCE_ROW_QUANTUM)
    if padded == rows:
        return packed_linear(x, weight, bias)
    flat = nn.functional.pad(x.reshape(rows, x.size(-1)), (0, 0, 0, padded - rows))
    return packed_linear(flat, weight, bias)[:rows].view(*x.shape[:-1], -1)


class PackedLinear(nn.Module):
    """An inference copy of an nn.Linear with its weight packed for oneDNN."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = pack(linear.weight)
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: Tensor) -> Tensor:
        """x: ... x in -> ... x out."""
        return padded_linear(x, self.packed, self.bias)


class PackedLSTMCell(nn.Module):
    """An inference copy of an nn.LSTMCell: one packed matmul of [x; h] per step.

    Same gates as nn.LSTMCell (PyTorch's order i, f, g, o), with W_ih and W_hh side by side
    and b_ih + b_hh summed once.
    """

    def __init__(self, cell: nn.LSTMCell) -> None:
        super().__init__()
        self.input_size, self.hidden_size = cell.input_size, cell.hidden_size
        self.packed = pack(torch.cat([cell.weight_ih, cell.weight_hh], dim=1))
        self.bias = (
            (cell.bias_ih + cell.bias_hh).detach()
            if cell.bias
            else torch.zeros(4 * cell.hidden_size, dtype=cell.weight_ih.dtype)
        )

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """x: N x I, state (h, c) each N x H -> the new (h, c)."""
        gates = padded_linear(torch.cat([x, state[0]], dim=1), self.packed, self.bias)  # N x 4H
        h, c = cell_update("lstm", gates, state)
        return h, c


def pack_for_inference(model: M) -> M:
    """Swap every nn.Linear and nn.LSTMCell of an eval-mode model for its packed copy, in place.

    A no-op (the model is returned as it is) where `available` says no for its parameters.
    The swapped model no longer trains and its state_dict changes: use it to translate only.
    """
    first = next(model.parameters(), None)
    if first is None or not available(first.device, first.dtype):
        return model
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, PackedLinear(child))
            elif type(child) is nn.LSTMCell:
                setattr(parent, name, PackedLSTMCell(child))
    return model
