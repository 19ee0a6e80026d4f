"""The attentional decoder: one step function serves teacher forcing and search alike.

Luong-style attentions (dot, general, concat, and `none`) attend *after* the RNN step with the
new hidden state; Bahdanau attends *before* it with the previous hidden state and feeds the
context into the RNN. Either way the step ends in the attentional vector
`tanh(W [h_t; context])`, which goes to the output layer and, with input feeding, joins the
next step's input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from nmt_cli.model.attention import Attention
from nmt_cli.model.dropout import Dropout
from nmt_cli.model.encoder import RNNState
from nmt_cli.model.gates import tanh
from nmt_cli.model.kernels import Cell, StepKernels, pass_kernels
from nmt_cli.model.step_memory import pass_attention
from nmt_cli.model.step_weight import step_dtype
from nmt_cli.special_ids import PAD_ID

# One entry per name in `names.CELLS`.
CELL_MODULES: dict[str, Any] = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}


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
            CELL_MODULES[cell](input_size if i == 0 else hidden_size, hidden_size)
            for i in range(num_layers)
        )
        self.cell_kind = cell
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(hidden_size + memory_size, output_size, bias=False)
        # The kernel choice for teacher-forced passes with gradients: per-pass weights (see
        # `kernels.py`), or False for the modules, one weight gradient per step.
        self.per_pass_weights = True

    def init_state(
        self, hidden: RNNState, memory: Tensor, keys: Tensor, mask: Tensor
    ) -> DecoderState:
        """The state before the first step. hidden: each layers x B x Hd."""
        feed = hidden[0].new_zeros(memory.size(0), self.output_size)
        memory, keys = self.attention.step_inputs(memory, keys)
        return DecoderState(hidden=hidden, feed=feed, memory=memory, keys=keys, mask=mask)

    def step(
        self, embedded: Tensor, state: DecoderState
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One decoder step, with the modules as they are (search, validation).

        Args:
            embedded: N x E embeddings of the previous output tokens.
            state: the state for the same N rows.

        Returns:
            the attentional vector N x O (after dropout), the new state, and the
            attention weights N x S (None for `attention: none`).
        """
        return self._step(
            self.emb_dropout(embedded),
            state,
            StepKernels(list(self.cells), self.out, self.attention),
        )

    def _step(
        self, embedded: Tensor, state: DecoderState, kernels: StepKernels
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """`step` with the cells and output layer of `kernels`, on embeddings after dropout.

        1. The input: the embedding, the previous attentional vector (input feeding) and, for
           Bahdanau, the context attended with the previous top hidden state.
        2. The stacked cells: new hidden states, each layers x N x Hd.
        3. Luong: attend with the new top hidden state.
        4. The attentional vector tanh(W [h_t; context]): N x O.
        """
        inputs = [embedded]
        if self.input_feeding:
            inputs.append(state.feed)
        if self.attend_before:  # Bahdanau: query with the previous top hidden state
            context, attention = kernels.attention(
                state.hidden[0][-1], state.keys, state.memory, state.mask
            )
            inputs.append(context)
        hidden = self._recur(torch.cat(inputs, dim=-1), state.hidden, kernels.cells)
        top = hidden[0][-1]  # N x Hd
        if not self.attend_before:
            context, attention = kernels.attention(top, state.keys, state.memory, state.mask)
        # in the context's dtype (autocast's in training): one cast of the state, not of the
        # whole concatenation
        attentional = self.dropout(
            tanh(kernels.out(torch.cat([top.to(context.dtype), context], dim=-1)))
        )
        return attentional, replace(state, hidden=hidden, feed=attentional), attention  # N x O

    def _recur(self, x: Tensor, hidden: RNNState, cells: Sequence[Cell]) -> RNNState:
        """Run the stacked cells one step. x: N x I; hidden: each layers x N x Hd."""
        lstm = self.cell_kind == "lstm"
        new: list[tuple[Tensor, ...]] = []
        for i, cell in enumerate(cells):
            previous = tuple(part[i] for part in hidden)  # each N x Hd
            out = cell(x, previous if lstm else previous[0])
            new.append(out if lstm else (out,))
            x = self.dropout(new[-1][0]) if i + 1 < len(cells) else new[-1][0]
        return tuple(torch.stack(parts) for parts in zip(*new, strict=True))

    def _reference_inputs(self, tgt_in: Tensor) -> tuple[Tensor, ...]:
        """Every step's input embedding when all inputs are known (no sampling): T tensors
        B x E, after dropout (one draw for all steps), in the dtype the steps compute in
        (autocast's when it is on, cast once here rather than at every step)."""
        embedded = self.emb_dropout(self.embedding(tgt_in))  # B x T x E
        embedded = embedded.to(step_dtype(embedded))
        # unbind, not embedded[:, t]: its backward stacks all steps' gradients at once instead
        # of writing each step's gradient into a fresh B x T x E zero tensor.
        return embedded.unbind(1)

    def forward(
        self,
        tgt_in: Tensor,
        state: DecoderState,
        generator: Callable[[Tensor], Tensor] | None = None,
        sampling_prob: float = 0.0,
    ) -> tuple[Tensor, list[Tensor | None]]:
        """Teacher forcing over a whole target prefix, with optional scheduled sampling.

        With gradients (and `per_pass_weights`), the steps run with per-pass weights
        (`kernels.pass_kernels`); otherwise with the modules, as `step`.
        Scheduled sampling (Bengio et al., 2015), when `sampling_prob` > 0: at every step t > 0
        each sentence flips its own coin (one per target token): with probability
        `sampling_prob` its input is the argmax of `generator` on its own step t-1 output
        (detached: no gradient flows through the choice), otherwise the reference token
        tgt_in[:, t]. Padding stays padding. The prediction comes from the training-mode output
        (dropout included), as the model would see it if it kept going on its own.

        Args:
            tgt_in: B x T input tokens (BOS + target, padded).
            state: the initial state for the B sentences.
            generator: attentional vectors B x O -> logits B x V; needed for sampling only.
            sampling_prob: probability of feeding the prediction, in [0, 1].

        Returns:
            B x T x O attentional vectors and the per-step attention weights.
        """
        if sampling_prob > 0.0 and generator is None:
            raise ValueError("scheduled sampling needs the generator")
        reference = self._reference_inputs(tgt_in) if sampling_prob == 0.0 else None
        kernels = (
            pass_kernels(
                self.cell_kind,
                self.cells,
                self.out,
                pass_attention(self.attention, state.keys, state.memory),
            )
            if self.per_pass_weights and torch.is_grad_enabled()
            else StepKernels(list(self.cells), self.out, self.attention)
        )
        outputs: list[Tensor] = []
        attention: list[Tensor | None] = []
        for t in range(tgt_in.size(1)):
            if reference is not None:
                embedded_t = reference[t]  # B x E
            else:
                tokens = tgt_in[:, t]
                if t > 0 and generator is not None:
                    tokens = _sample_inputs(tokens, outputs[-1], generator, sampling_prob)
                embedded_t = self.emb_dropout(self.embedding(tokens))
            out, state, step_attention = self._step(embedded_t, state, kernels)
            outputs.append(out)
            attention.append(step_attention)
        return torch.stack(outputs, dim=1), attention  # B x T x O


def _sample_inputs(
    gold: Tensor, previous: Tensor, generator: Callable[[Tensor], Tensor], sampling_prob: float
) -> Tensor:
    """Scheduled sampling's inputs for one step.

    Args:
        gold: B reference tokens; previous: B x O the previous step's attentional vectors.
        generator: B x O -> B x V logits; sampling_prob: probability of taking the argmax.

    Returns:
        B tokens: the argmax of `generator(previous)` or `gold`, per coin; padding stays.
    """
    with torch.no_grad():
        predicted = generator(previous).argmax(dim=-1)  # B
    use_own = torch.rand(gold.shape, device=gold.device) < sampling_prob
    return torch.where(use_own & (gold != PAD_ID), predicted, gold)
