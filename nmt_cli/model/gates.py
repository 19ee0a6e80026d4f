"""The gate arithmetic of nn.LSTMCell and nn.RNNCell (tanh), after the cell's one matmul.

Shared by the decoder's teacher-forced step (`decoder.py`, with [W_ih W_hh] as one weight) and
the packed inference cell (`onednn.py`), so both follow PyTorch's cells exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    return (torch.tanh(gates),)
