"""The attentional decoder: one step function serves teacher forcing and search alike.

Luong-style attentions (dot, general, concat, and `none`) attend *after* the RNN step with the
new hidden state; Bahdanau attends *before* it with the previous hidden state and feeds the
context into the RNN. Either way the step ends in the attentional vector
`tanh(W [h_t; context])`, which goes to the output layer and, with input feeding, joins the
next step's input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from nmt_cli.model.attention import Attention
from nmt_cli.model.dropout import Dropout
from nmt_cli.model.encoder import RNNState
from nmt_cli.tokenizer import PAD_ID

CELLS: dict[str, Any] = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}


@dataclass(frozen=True)
class DecoderState:
    """Everything one decoder step needs, for N rows (sentences or beam hypotheses).

    Attributes:
        hidden: recurrent state, each tensor layers x N x Hd ((h, c) for LSTM).
        feed: N x O previous attentional vector (zeros at the first step).
        memory: N x S x He encoder states.
        keys: attention keys from `Attention.keys` (N x S x K), or the N x He fixed
            context for `attention: none`.
        mask: N x S bool, True = real source token.
    """

    hidden: RNNState
    feed: Tensor
    memory: Tensor
    keys: Tensor
    mask: Tensor

    def index_select(self, idx: Tensor, same_sources: bool = False) -> DecoderState:
        """Keep / repeat rows `idx` (N' long): beam expansion, reordering, dropping finished.

        With `same_sources` (beams reordered within their sentences) the encoder side is
        already right row by row, and copying it every step would cost more than the step's
        attention.
        """
        source_side = (
            (self.memory, self.keys, self.mask)
            if same_sources
            else (t.index_select(0, idx) for t in (self.memory, self.keys, self.mask))
        )
        memory, keys, mask = source_side
        return DecoderState(
            hidden=tuple(h.index_select(1, idx) for h in self.hidden),
            feed=self.feed.index_select(0, idx),
            memory=memory,
            keys=keys,
            mask=mask,
        )


class Decoder(nn.Module):
    """Stacked RNN cells + attention + the attentional output layer."""

    def __init__(
        self,
        embedding: nn.Embedding,
        cell: str,
        hidden_size: int,
        num_layers: int,
        attention: Attention,
        attend_before: bool,
        memory_size: int,
        output_size: int,
        input_feeding: bool,
        dropout: float,
        emb_dropout: float,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.emb_dropout = Dropout(emb_dropout)
        self.attention = attention
        self.attend_before = attend_before
        self.input_feeding = input_feeding
        self.output_size = output_size
        input_size = embedding.embedding_dim
        input_size += output_size if input_feeding else 0
        input_size += memory_size if attend_before else 0
        self.cells = nn.ModuleList(
            CELLS[cell](input_size if i == 0 else hidden_size, hidden_size)
            for i in range(num_layers)
        )
        self.is_lstm = cell == "lstm"
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(hidden_size + memory_size, output_size, bias=False)

    def init_state(
        self, hidden: RNNState, memory: Tensor, keys: Tensor, mask: Tensor
    ) -> DecoderState:
        """The state before the first step. hidden: each layers x B x Hd."""
        feed = memory.new_zeros(memory.size(0), self.output_size)
        return DecoderState(hidden=hidden, feed=feed, memory=memory, keys=keys, mask=mask)

    def step(
        self, embedded: Tensor, state: DecoderState
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One decoder step.

        Args:
            embedded: N x E embeddings of the previous output tokens.
            state: the state for the same N rows.

        Returns:
            the attentional vector N x O (after dropout), the new state, and the
            attention weights N x S (None for `attention: none`).
        """
        inputs = [self.emb_dropout(embedded)]
        if self.input_feeding:
            inputs.append(state.feed)
        if self.attend_before:  # Bahdanau: query with the previous top hidden state
            context, weights = self.attention(
                state.hidden[0][-1], state.keys, state.memory, state.mask
            )
            inputs.append(context)
        hidden = self._recur(torch.cat(inputs, dim=-1), state.hidden)
        top = hidden[0][-1]  # N x Hd
        if not self.attend_before:
            context, weights = self.attention(top, state.keys, state.memory, state.mask)
        attentional = self.dropout(torch.tanh(self.out(torch.cat([top, context], dim=-1))))
        return attentional, replace(state, hidden=hidden, feed=attentional), weights  # N x O

    def _recur(self, x: Tensor, hidden: RNNState) -> RNNState:
        """Run the stacked cells one step. x: N x I; hidden: each layers x N x Hd."""
        new: list[tuple[Tensor, ...]] = []
        for i, cell in enumerate(self.cells):
            if self.is_lstm:
                h, c = cell(x, (hidden[0][i], hidden[1][i]))
                new.append((h, c))
            else:
                h = cell(x, hidden[0][i])
                new.append((h,))
            x = self.dropout(h) if i + 1 < len(self.cells) else h
        return tuple(torch.stack(parts) for parts in zip(*new, strict=True))

    def forward(self, tgt_in: Tensor, state: DecoderState) -> tuple[Tensor, list[Tensor | None]]:
        """Teacher forcing over a whole target prefix.

        Args:
            tgt_in: B x T input tokens (BOS + target, padded).
            state: the initial state for the B sentences.

        Returns:
            B x T x O attentional vectors and the per-step attention weights.
        """
        embedded = self.embedding(tgt_in)  # B x T x E
        outputs, attention = [], []
        # unbind, not embedded[:, t]: its backward stacks all steps' gradients at once instead
        # of writing each step's gradient into a fresh B x T x E zero tensor.
        for embedded_t in embedded.unbind(1):
            out, state, weights = self.step(embedded_t, state)
            outputs.append(out)
            attention.append(weights)
        return torch.stack(outputs, dim=1), attention

    def forward_sampled(
        self,
        tgt_in: Tensor,
        state: DecoderState,
        generator: Callable[[Tensor], Tensor],
        sampling_prob: float,
    ) -> tuple[Tensor, list[Tensor | None]]:
        """Teacher forcing with scheduled sampling (Bengio et al., 2015).

        At every step t > 0, each sentence flips its own coin (one per target token): with
        probability `sampling_prob` its input is the argmax of the generator on its own step
        t-1 output (detached: no gradient flows through the choice), otherwise the reference
        token tgt_in[:, t]. Padding stays padding.
        The prediction comes from the training-mode output (dropout included), as the model
        would see it if it kept going on its own.

        Args:
            tgt_in: B x T input tokens (BOS + target, padded).
            state: the initial state for the B sentences.
            generator: attentional vectors N x O -> logits N x V.
            sampling_prob: probability of feeding the prediction, in [0, 1].

        Returns:
            B x T x O attentional vectors and the per-step attention weights, as `forward`.
        """
        outputs: list[Tensor] = []
        attention: list[Tensor | None] = []
        prev = tgt_in[:, 0]  # B, BOS
        for t in range(tgt_in.size(1)):
            if t > 0:
                gold = tgt_in[:, t]  # B
                with torch.no_grad():
                    predicted = generator(outputs[-1]).argmax(dim=-1)  # B
                use_own = torch.rand(gold.shape, device=gold.device) < sampling_prob
                prev = torch.where(use_own & (gold != PAD_ID), predicted, gold)
            out, state, weights = self.step(self.embedding(prev), state)  # B x O
            outputs.append(out)
            attention.append(weights)
        return torch.stack(outputs, dim=1), attention  # B x T x O
