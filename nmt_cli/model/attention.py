"""Attention: a dynamic, softmax-weighted summary of the encoder states at each decoder step.

Each attention splits its work in two: `keys(memory)` runs once per sentence (the part of the
score that depends only on the encoder states), and `forward(query, keys, memory, mask)` runs
at every decoder step. Padding gets exactly zero weight. Several queries may share one source
row (the k beams of a sentence in beam search): N queries against B source rows are read as B
groups of N / B consecutive queries, so the encoder states are never copied k times.
`NoAttention` is the plain fixed-context seq2seq: every step sees the same vector, the
encoder's final summary.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from nmt_cli.model.gates import tanh


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over source positions with padding at exactly 0.

    Args:
        scores: B x S raw scores (or B x G x S: G queries per source row).
        mask: B x S bool, True = real token (every row has at least one).

    Returns:
        Weights shaped like `scores`, summing to 1 over the real tokens.
    """
    if scores.dim() == 3:
        mask = mask.unsqueeze(1)
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


class Attention(nn.Module):
    """Base class; subclasses define `keys` and `score` (or `attend`).

    The per-step dtype is this module's own kernel choice, made once by `run_steps_in` when
    the model is moved to a precision: None runs in the model's dtype.
    """

    # Whether `score` multiplies by weights at every step; those steps must run in the
    # weights' dtype. A property of the class, never changed.
    has_step_weights: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.step_dtype: torch.dtype | None = None

    def run_steps_in(self, dtype: torch.dtype) -> None:
        """Run the per-step products in `dtype` from now on, if this attention has no per-step
        weights (a no-op otherwise): queries are cast at each step, the encoder states once
        per sentence (`step_inputs`), and the context comes back in the query's dtype."""
        if not self.has_step_weights:
            self.step_dtype = dtype

    def step_inputs(self, memory: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder states and keys as the steps read them (cast once per sentence).

        Args:
            memory: B x S x He encoder states; keys: from `keys` (B x S x K, or B x He).

        Returns:
            memory and keys, in `step_dtype` when it is set.
        """
        if self.step_dtype is None:
            return memory, keys
        return memory.to(self.step_dtype), keys.to(self.step_dtype)

    def keys(self, memory: Tensor, summary: Tensor) -> Tensor:
        """Per-sentence precomputation.

        Args:
            memory: B x S x He encoder states; summary: B x He the encoder's final state.

        Returns:
            keys B x S x K (what `score` compares the query with).
        """
        return memory

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """query: B x G x Hd (G queries per source row), keys: B x S x K -> scores B x G x S."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """One step of attention.

        Args:
            query: N x Hd decoder states, N a multiple of B: rows g*G ... g*G + G - 1
                (G = N / B) attend to source row g.
            keys: B x S x K, from `keys(memory)`.
            memory: B x S x He encoder states (the values).
            mask: B x S bool, True = real token.

        Returns:
            context N x He (in the query's dtype) and weights N x S.
        """
        if self.step_dtype is None:
            return self.attend(query, keys, memory, mask)
        context, weights = self.attend(query.to(self.step_dtype), keys, memory, mask)
        return context.to(query.dtype), weights

    def attend(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """`forward` in the dtype of its inputs (the same arguments and results)."""
        batch, n = keys.size(0), query.size(0)
        grouped = query.view(batch, n // batch, query.size(-1))  # B x G x Hd
        weights = masked_softmax(self.score(grouped, keys), mask)  # B x G x S
        context = torch.bmm(weights, memory)  # B x G x He
        return context.view(n, -1), weights.view(n, -1)


class DotAttention(Attention):
    """Luong dot: score = h_t . h_s (needs equal encoder and decoder sizes)."""

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(keys, query.transpose(1, 2)).transpose(1, 2)


class GeneralAttention(DotAttention):
    """Luong general (bilinear): score = h_t^T W h_s; W h_s is computed once per sentence."""

    def __init__(self, query_size: int, memory_size: int, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(memory_size, query_size, bias=False)

    def keys(self, memory: Tensor, summary: Tensor) -> Tensor:
        return self.proj(memory)  # B x S x Hd: the dot score against W h_s


class AdditiveAttention(Attention):
    """Additive score v^T tanh(W_q q + W_k h_s) (Luong concat; Bahdanau's form)."""

    has_step_weights: ClassVar[bool] = True

    def __init__(self, query_size: int, memory_size: int, hidden_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(memory_size, hidden_size, bias=False)
        self.query_proj = nn.Linear(query_size, hidden_size, bias=True)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def keys(self, memory: Tensor, summary: Tensor) -> Tensor:
        return self.key_proj(memory)  # B x S x A

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        hidden = tanh(keys.unsqueeze(1) + self.query_proj(query).unsqueeze(2))  # BxGxSxA
        return self.v(hidden).squeeze(3)


class NoAttention(Attention):
    """Fixed context: every step gets the encoder's final summary (Cho et al., 2014).

    The summary travels as the "keys" (B x He), so this module has no parameters and no
    per-step work: the bottleneck that attention removes.
    """

    def keys(self, memory: Tensor, summary: Tensor) -> Tensor:
        return summary

    def attend(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        group = query.size(0) // keys.size(0)
        return (keys if group == 1 else keys.repeat_interleave(group, dim=0)), None


# One entry per name in `names.ATTENTIONS`.
ATTENTION: dict[str, type[Attention]] = {
    "none": NoAttention,
    "dot": DotAttention,
    "general": GeneralAttention,
    "concat": AdditiveAttention,
    "bahdanau": AdditiveAttention,
}


def build_attention(name: str, query_size: int, memory_size: int, hidden_size: int) -> Attention:
    """Pick an attention by its config name (validated by the config)."""
    cls = ATTENTION[name]
    if cls in (NoAttention, DotAttention):
        return cls()
    return cls(query_size, memory_size, hidden_size)  # type: ignore[call-arg,unused-ignore]
