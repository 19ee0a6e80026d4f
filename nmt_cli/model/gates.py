"""The gate arithmetic of nn.LSTMCell and nn.RNNCell (tanh), after the cell's one matmul.

Shared by the decoder's teacher-forced step (`decoder.py`, with [W_ih W_hh] as one weight) and
the packed inference cell (`onednn.py`), so both follow PyTorch's cells exactly. Also `tanh`,
torch.tanh with a faster bf16 path on the CPU, which the decoder and attention use too.
"""

from __future__ import annotations

import torch
from torch import Tensor


def tanh(x: Tensor) -> Tensor:
    """torch.tanh, bitwise, faster on bf16 CPU tensors that need no gradient (translation).

    PyTorch's CPU tanh is 2-3x slower on bf16 than on fp32 (140 / 320 rows x 2048: 310 / 770
    us in bf16, 120 / 330 us through fp32 with both casts). Its bf16 kernel computes in fp32
    too, so going through fp32 gives the same rounded values. With a gradient, torch.tanh
    itself: a custom autograd function for the same trick made bf16 training steps slower.
    """
    if (
        x.dtype == torch.bfloat16
        and x.device.type == "cpu"
        and not (x.requires_grad and torch.is_grad_enabled())
    ):
        return torch.tanh(x.float()).to(x.dtype)
    return torch.tanh(x)


def cell_update(kind: str, gates: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The new state from the pre-activations `gates` = W_ih x + b_ih + W_hh h + b_hh.

    Args:
        kind: "lstm" (gates N x 4H in PyTorch's order i, f, g, o) or "rnn" (gates N x H).
        gates: the pre-activations.
        state: (h, c) for an LSTM, (h,) for a plain RNN, each N x H.

    Returns:
        The new (h, c) or (h,).
    """
    if kind == "lstm":
        i, f, g, o = gates.chunk(4, dim=1)  # N x H each
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * tanh(g)
        return torch.sigmoid(o) * tanh(c), c
    return (tanh(gates),)
