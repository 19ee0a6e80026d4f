"""The source encoder: embeddings and a (bi)directional RNN that never reads padding."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nmt_cli.model.dropout import Dropout
from nmt_cli.model.segments import run_rnn

# One entry per name in `names.CELLS`.
RNNS: dict[str, Any] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

# A recurrent state: (h, c) for an LSTM, (h,) for GRU / plain RNN; each layers x B x H.
RNNState = tuple[Tensor, ...]


class Encoder(nn.Module):
    """Embeds the source and runs a stacked, optionally bidirectional RNN.

    Padding never enters the recurrence: a sentence gets the same states alone or in a padded
    batch. `segments.run_rnn` picks how: packed sequences on CUDA (cuDNN) and for int8
    models, segments of fused calls on the CPU (faster to train than PyTorch's packed CPU
    path, the same result).
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        cell: str,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        emb_dropout: float,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.emb_dropout = Dropout(emb_dropout)
        self.directions = 2 if bidirectional else 1
        self.num_layers = num_layers
        self.rnn = RNNS[cell](
            embedding.embedding_dim,
            hidden_size // self.directions,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.out_dropout = Dropout(dropout)
        self.output_size = hidden_size

    def forward(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, RNNState]:
        """Encode a padded batch.

        Args:
            src: B x S token ids (padded with PAD_ID).
            lengths: B real lengths, int64 on the CPU (as packing requires), each >= 1.

        Returns:
            memory: B x S x H encoder states (zeros at padding);
            final: the last state of every layer, directions concatenated, each layers x B x H.
        """
        embedded = self.emb_dropout(self.embedding(src))  # B x S x E
        memory, states = run_rnn(self.rnn, embedded, lengths)  # B x S x H
        return self.out_dropout(memory), tuple(self._join_directions(s) for s in states)

    def _join_directions(self, state: Tensor) -> Tensor:
        """(layers * dirs) x B x h -> layers x B x (dirs * h)."""
        _, batch, size = state.shape
        state = state.view(self.num_layers, self.directions, batch, size)
        return torch.cat(state.unbind(1), dim=-1)
