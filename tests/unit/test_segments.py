"""The segmented RNN equals PyTorch's packed RNN: outputs, final states and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt_cli.model.segments import run_segmented


def packed_reference(
    rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    out, final = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    return out, final if isinstance(final, tuple) else (final,)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, True), (2, True), (2, False)])
def test_segmented_rnn_equals_the_packed_one(
    cls: type[nn.RNNBase], layers: int, bidirectional: bool
) -> None:
    torch.manual_seed(0)
    rnn = cls(6, 5, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    # unsorted, repeated lengths, a length-1 row, and padding beyond the longest row
    lengths = torch.tensor([3, 7, 1, 7, 4])
    x = torch.randn(5, 9, 6, requires_grad=True)
    got = run_segmented(rnn, x, lengths)
    want = packed_reference(rnn, x, lengths)
    torch.testing.assert_close(got[0], want[0])
    assert got[0][0, 3:].abs().max() == 0  # padding positions are exactly zero
    for g, w in zip(got[1], want[1], strict=True):
        torch.testing.assert_close(g, w)

    def grads(out: torch.Tensor, final: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        loss = (out * torch.linspace(0, 1, out.size(-1))).sum() + sum(f.sum() for f in final)
        return torch.autograd.grad(loss, [x, *rnn.parameters()])

    for g, w in zip(grads(*got), grads(*want), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_one_sentence_and_equal_lengths() -> None:
    torch.manual_seed(0)
    rnn = nn.LSTM(4, 3, bidirectional=True, batch_first=True)
    for lengths in (torch.tensor([5]), torch.tensor([4, 4, 4])):
        x = torch.randn(len(lengths), 5, 4)
        got, want = run_segmented(rnn, x, lengths), packed_reference(rnn, x, lengths)
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1][1], want[1][1])
