"""What a decoder step multiplies with, chosen once per teacher-forced pass.

A step runs its stacked cells and its attentional output layer through a `StepKernels`. Search
and validation use the modules themselves (nn.LSTMCell / nn.Linear, or the packed or quantized
copies `precision.py` swapped in when the model was moved to its precision). A teacher-forced
pass with gradients uses per-pass weights instead (`pass_kernels`): the same computation, with
one weight-gradient matmul per sequence instead of one per step (`step_weight.py`), packed for
oneDNN on the CPU, and for the dot and general attentions one gradient bmm per sequence for
the keys and encoder states (`step_memory.py`). The decoder makes this choice once, at the
start of the pass; its step function never sees it as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from nmt_cli.model.gates import cell_update
from nmt_cli.model.step_weight import StepWeight

# A cell with the interface of the nn cell it computes: (x N x I, (h, c)) -> (h, c) for an
# LSTM, (x, h) -> h for a GRU or plain RNN; each state tensor N x H.
Cell = Callable[..., Any]


# An attention with the interface of `Attention.forward`: (query, keys, memory, mask) ->
# (context, weights).
Attend = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor | None]]


@dataclass(frozen=True)
class StepKernels:
    """The matmul-bearing parts of one decoder step.

    Attributes:
        cells: per layer, the cell to run (see `Cell`).
        out: the attentional output layer, N x (Hd + He) -> N x O.
        attention: the attention to run (see `Attend`).
    """

    cells: Sequence[Cell]
    out: Callable[[Tensor], Tensor]
    attention: Attend


class PassCell:
    """nn.LSTMCell / nn.RNNCell (tanh) for one teacher-forced pass, with PyTorch's gate order.

    [W_ih W_hh] side by side is one `StepWeight`, for one matmul of [x; h] per step, and
    b_ih + b_hh is summed once per pass.
    """

    def __init__(self, kind: str, cell: nn.RNNCellBase) -> None:
        self.kind = kind
        self.weight = StepWeight(torch.cat([cell.weight_ih, cell.weight_hh], dim=1))
        self.bias = cell.bias_ih + cell.bias_hh

    def __call__(self, x: Tensor, state: Tensor | tuple[Tensor, Tensor]) -> Any:
        """x: N x I; state: (h, c) for an LSTM, h otherwise -> the new state, alike."""
        parts = state if isinstance(state, tuple) else (state,)
        dtype = self.weight.dtype  # concatenated in the matmul's dtype: no cast of the whole
        gates = self.weight(torch.cat([x.to(dtype), parts[0].to(dtype)], dim=-1)) + self.bias
        new = cell_update(self.kind, gates, parts)  # N x (gates * H) -> each N x H
        return new if self.kind == "lstm" else new[0]


def pass_kernels(kind: str, cells: nn.ModuleList, out: nn.Linear, attention: Attend) -> StepKernels:
    """The kernels of one teacher-forced pass with gradients (built once per batch).

    Args:
        kind: the cell kind, lstm, gru or rnn. GRU cells stay the modules: their candidate
            gate needs W_hh h apart.
        cells: the decoder's cells; out: its attentional output layer.
        attention: the pass's attention (`step_memory.pass_attention`).
    """
    if kind == "gru":
        return StepKernels(cells=list(cells), out=StepWeight(out.weight), attention=attention)
    pass_cells = [PassCell(kind, cell) for cell in cast("list[nn.RNNCellBase]", list(cells))]
    return StepKernels(cells=pass_cells, out=StepWeight(out.weight), attention=attention)
