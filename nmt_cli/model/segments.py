"""A padding-free (bi)directional RNN over variable-length sentences, from fused calls.

PyTorch's packed-sequence RNN on the CPU runs one small step at a time, and its backward
writes every step's gradient into a zero tensor the size of the whole input, so its cost grows
with (steps x tokens). Here the batch is sorted by length and the time axis is cut where a
sentence ends: within each segment the same sentences are all still running, so one fused
(oneDNN) call per segment and direction does the work, carrying the state to the next segment.
A batch of similar lengths has a few segments. The result equals the packed RNN's (padding
never enters the recurrence), up to float rounding; on CUDA, cuDNN packs natively instead.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt_cli.model.dropout import dropout

FUSED: dict[type[nn.RNNBase], Callable[..., Any]] = {
    nn.LSTM: torch.lstm,
    nn.GRU: torch.gru,
    nn.RNN: torch.rnn_tanh,
}


def reverse_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first `lengths` steps, leaving padding in place. x: B x S x D."""
    positions = torch.arange(x.size(1), device=x.device).unsqueeze(0)  # 1 x S
    lengths = lengths.to(x.device).unsqueeze(1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)
    return x.gather(1, index.unsqueeze(2).expand(-1, -1, x.size(2)))


def run_rnn(rnn: nn.Module, x: Tensor, lengths: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run a batch_first RNN module over padded sequences as if they were packed.

    The kernel follows what runs it: segments of fused calls (`run_segmented`) for a float
    nn.LSTM / nn.GRU / nn.RNN on the CPU; PyTorch's packed sequences on CUDA (cuDNN packs
    natively) and for the quantized modules an int8 model holds (no fused op takes them).

    Args:
        rnn: the recurrent module; x: B x S x I padded inputs; lengths: B lengths (>= 1, int64
            on the CPU).

    Returns:
        outputs B x S x (dirs * H), zeros at padding, and the final states, each
        (layers * dirs) x B x H.
    """
    if x.is_cuda or type(rnn) not in FUSED:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        output, final = rnn(packed)
        memory, _ = pad_packed_sequence(output, batch_first=True, total_length=x.size(1))
        return memory, final if isinstance(final, tuple) else (final,)
    return run_segmented(cast(nn.RNNBase, rnn), x, lengths)


def run_segmented(rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run `rnn` (batch_first, any layers and directions) as if over packed sequences.

    Args:
        rnn: an nn.LSTM / nn.GRU / nn.RNN (tanh) whose weights are used.
        x: B x S x I padded inputs; lengths: B lengths (>= 1, int64 on the CPU).

    Returns:
        outputs B x S x (dirs * H) with zeros at padding, and the final states as nn.LSTM
        returns them: each (layers * dirs) x B x H, taken at each sentence's last real step.
    """
    if rnn.mode == "RNN_RELU":
        raise ValueError("run_segmented supports tanh RNNs, GRUs and LSTMs")
    batch, width = x.size(0), x.size(1)
    lengths, order = torch.sort(lengths, descending=True)
    order = order.to(x.device)
    x = x.index_select(0, order)[:, : int(lengths[0])]
    bounds = [0, *torch.unique(lengths).tolist()]  # segment edges: where sentences end
    sizes = [end - start for start, end in pairwise(bounds)]
    running = [int((lengths > start).sum()) for start in bounds[:-1]]
    finals: list[tuple[Tensor, ...]] = []
    for layer in range(rnn.num_layers):
        outputs = []
        for direction in range(2 if rnn.bidirectional else 1):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            weights = [getattr(rnn, name + suffix) for name in _weight_names(rnn)]
            inputs = reverse_within(x, lengths) if direction else x
            out, final = _one_direction(rnn, weights, inputs, sizes, running)
            outputs.append(reverse_within(out, lengths) if direction else out)
            finals.append(final)
        x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
        if layer + 1 < rnn.num_layers and rnn.dropout > 0:
            x = dropout(x, rnn.dropout, rnn.training)
    restore = torch.empty_like(order)
    restore[order] = torch.arange(batch, device=order.device)
    memory = x.index_select(0, restore)
    if memory.size(1) < width:  # the batch was padded beyond its longest sentence
        memory = nn.functional.pad(memory, (0, 0, 0, width - memory.size(1)))
    states = tuple(
        torch.cat([f[i] for f in finals]).index_select(1, restore) for i in range(len(finals[0]))
    )
    return memory, states


def _weight_names(rnn: nn.RNNBase) -> list[str]:
    return ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if rnn.bias else [])


def _one_direction(
    rnn: nn.RNNBase, weights: list[Tensor], x: Tensor, sizes: list[int], running: list[int]
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One layer, one direction over length-sorted rows: a fused call per segment.

    Returns outputs B x S' x H (zeros after each row's end) and the final state(s), each
    1 x B x H.
    """
    batch, hidden = x.size(0), rnn.hidden_size
    fused = FUSED[type(rnn)]
    is_lstm = isinstance(rnn, nn.LSTM)
    state = tuple(x.new_zeros(1, batch, hidden) for _ in range(2 if is_lstm else 1))
    outputs, ended = [], []
    for chunk, n in zip(x.split(sizes, dim=1), running, strict=True):
        ended.append(tuple(s[:, n:] for s in state))  # rows that ended before this segment
        hx = tuple(s[:, :n] for s in state)
        args = (weights, bool(rnn.bias), 1, 0.0, rnn.training, False, True)
        if is_lstm:
            out, h, c = fused(chunk[:n], hx, *args)
            state = (h, c)
        else:
            out, h = fused(chunk[:n], hx[0], *args)
            state = (h,)
        outputs.append(nn.functional.pad(out, (0, 0, 0, 0, 0, batch - n)))
    ended.append(state)
    # Rows end shortest first, and rows are sorted longest first: reverse to restore order.
    final = tuple(torch.cat([e[i] for e in reversed(ended)], dim=1) for i in range(len(state)))
    return torch.cat(outputs, dim=1), final
