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
from typing import Any, cast

import torch
from torch import Tensor, nn

from nmt_cli.model.attention import Attention
from nmt_cli.model.dropout import Dropout
from nmt_cli.model.encoder import RNNState
from nmt_cli.model.gates import cell_update
from nmt_cli.model.step_weight import StepWeight
from nmt_cli.tokenizer import PAD_ID

CELLS: dict[str, Any] = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}


@dataclass(frozen=True)
class StepWeights:
    """The decoder's per-step weights for one teacher-forced pass (see `StepWeight`).

    Attributes:
        cells: per layer, [W_ih W_hh] side by side (gates x (input + hidden)), for one matmul
            of [x; h] per step, and b_ih + b_hh. None for GRU cells, whose candidate gate
            needs W_hh h apart.
        out: the attentional output layer's weight.
    """

    cells: list[tuple[StepWeight, Tensor]] | None
    out: StepWeight


@dataclass(frozen=True)
class DecoderState:
    """Everything one decoder step needs, for N rows (sentences or beam hypotheses).

    Attributes:
        hidden: recurrent state, each tensor layers x N x Hd ((h, c) for LSTM).
        feed: N x O previous attentional vector (zeros at the first step).
        memory: B x S x He encoder states, B dividing N: the source side has one row per
            sentence, shared by N / B consecutive rows (a sentence's beams in beam search).
        keys: attention keys from `Attention.keys` (B x S x K), or the B x He fixed
            context for `attention: none`.
        mask: B x S bool, True = real source token.
    """

    hidden: RNNState
    feed: Tensor
    memory: Tensor
    keys: Tensor
    mask: Tensor

    def index_select(self, rows: Tensor, sources: Tensor | None = None) -> DecoderState:
        """Decoder rows `rows` and source rows `sources` (None: all) of this state.

        Beam expansion and reordering keep the source side as it is (k beams share one copy of
        their sentence's encoder states); dropping finished sentences selects their rows.
        """
        memory, keys, mask = (
            (self.memory, self.keys, self.mask)
            if sources is None
            else (t.index_select(0, sources) for t in (self.memory, self.keys, self.mask))
        )
        return DecoderState(
            hidden=tuple(h.index_select(1, rows) for h in self.hidden),
            feed=self.feed.index_select(0, rows),
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
        self.cell_kind = cell
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(hidden_size + memory_size, output_size, bias=False)

    def init_state(
        self, hidden: RNNState, memory: Tensor, keys: Tensor, mask: Tensor
    ) -> DecoderState:
        """The state before the first step. hidden: each layers x B x Hd."""
        feed = hidden[0].new_zeros(memory.size(0), self.output_size)
        dtype = self.attention.step_dtype
        if dtype is not None:  # once per sentence, so each step casts only its queries
            memory, keys = memory.to(dtype), keys.to(dtype)
        return DecoderState(hidden=hidden, feed=feed, memory=memory, keys=keys, mask=mask)

    def step(
        self, embedded: Tensor, state: DecoderState, weights: StepWeights | None = None
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One decoder step.

        Args:
            embedded: N x E embeddings of the previous output tokens.
            state: the state for the same N rows.
            weights: in a teacher-forced pass, the per-step weights of this pass (the same
                computation, with one weight-gradient matmul per sequence instead of one per
                step); None calls the modules (search, validation, quantized models).

        Returns:
            the attentional vector N x O (after dropout), the new state, and the
            attention weights N x S (None for `attention: none`).
        """
        inputs = [self.emb_dropout(embedded)]
        if self.input_feeding:
            inputs.append(state.feed)
        if self.attend_before:  # Bahdanau: query with the previous top hidden state
            context, attention = self._attend(state.hidden[0][-1], state)
            inputs.append(context)
        hidden = self._recur(torch.cat(inputs, dim=-1), state.hidden, weights)
        top = hidden[0][-1]  # N x Hd
        if not self.attend_before:
            context, attention = self._attend(top, state)
        out = self.out if weights is None else weights.out
        attentional = self.dropout(torch.tanh(out(torch.cat([top, context], dim=-1))))
        return attentional, replace(state, hidden=hidden, feed=attentional), attention  # N x O

    def _attend(self, query: Tensor, state: DecoderState) -> tuple[Tensor, Tensor | None]:
        """Attention for N queries; the context comes back in the query's dtype."""
        if self.attention.step_dtype is None:
            return self.attention(query, state.keys, state.memory, state.mask)
        context, weights = self.attention(
            query.to(self.attention.step_dtype), state.keys, state.memory, state.mask
        )
        return context.to(query.dtype), weights

    def _recur(self, x: Tensor, hidden: RNNState, weights: StepWeights | None) -> RNNState:
        """Run the stacked cells one step. x: N x I; hidden: each layers x N x Hd."""
        new: list[tuple[Tensor, ...]] = []
        for i, cell in enumerate(self.cells):
            previous = tuple(part[i] for part in hidden)  # each N x Hd
            if weights is None or weights.cells is None:
                lstm = self.cell_kind == "lstm"
                out = cell(x, previous if lstm else previous[0])
                new.append(out if lstm else (out,))
            else:
                weight, bias = weights.cells[i]
                new.append(_cell_step(self.cell_kind, weight, bias, x, previous))
            x = self.dropout(new[-1][0]) if i + 1 < len(self.cells) else new[-1][0]
        return tuple(torch.stack(parts) for parts in zip(*new, strict=True))

    def step_weights(self) -> StepWeights:
        """The per-step weights for one teacher-forced pass (built once per batch)."""
        cells = None
        if self.cell_kind != "gru":
            cells = [
                (
                    StepWeight(torch.cat([cell.weight_ih, cell.weight_hh], dim=1)),
                    cell.bias_ih + cell.bias_hh,
                )
                for cell in cast("list[nn.RNNCellBase]", list(self.cells))
            ]
        return StepWeights(cells=cells, out=StepWeight(self.out.weight))

    def forward(self, tgt_in: Tensor, state: DecoderState) -> tuple[Tensor, list[Tensor | None]]:
        """Teacher forcing over a whole target prefix.

        Args:
            tgt_in: B x T input tokens (BOS + target, padded).
            state: the initial state for the B sentences.

        Returns:
            B x T x O attentional vectors and the per-step attention weights.
        """
        embedded = self.embedding(tgt_in)  # B x T x E
        weights = self.step_weights() if torch.is_grad_enabled() else None
        outputs, attention = [], []
        # unbind, not embedded[:, t]: its backward stacks all steps' gradients at once instead
        # of writing each step's gradient into a fresh B x T x E zero tensor.
        for embedded_t in embedded.unbind(1):
            out, state, step_attention = self.step(embedded_t, state, weights)
            outputs.append(out)
            attention.append(step_attention)
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


def _cell_step(
    kind: str, weight: StepWeight, bias: Tensor, x: Tensor, state: tuple[Tensor, ...]
) -> tuple[Tensor, ...]:
    """What nn.LSTMCell / nn.RNNCell (tanh) compute, with `weight` = [W_ih W_hh], `bias` =
    b_ih + b_hh, and PyTorch's gate order (i, f, g, o).

    x: N x I; state: (h, c) for an LSTM, (h,) for a plain RNN, each N x H.
    """
    gates = weight(torch.cat([x, state[0].to(x.dtype)], dim=-1)) + bias  # N x (gates * H)
    return cell_update(kind, gates, state)
