"""Attention: a dynamic, softmax-weighted summary of the encoder states at each decoder step.

Each attention splits its work in two: `keys(memory)` runs once per sentence (the part of the
score that depends only on the encoder states), and `forward(query, keys, memory, mask)` runs
at every decoder step. Padding gets exactly zero weight. `NoAttention` is the plain
fixed-context seq2seq: every step sees the same vector, the encoder's final summary.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over source positions with padding at exactly 0.

    Args:
        scores: B x S raw scores.
        mask: B x S bool, True = real token (every row has at least one).

    Returns:
        B x S weights summing to 1 over the real tokens.
    """
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


class Attention(nn.Module):
    """Base class; subclasses define `keys` and `score`."""

    def keys(self, memory: Tensor, summary: Tensor) -> Tensor:
        """Per-sentence precomputation.

        Args:
            memory: B x S x He encoder states; summary: B x He the encoder's final state.

        Returns:
            keys B x S x K (what `score` compares the query with).
        """
        return memory

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """query: B x Hd, keys: B x S x K -> scores B x S."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """One step of attention.

        Args:
            query: B x Hd decoder state.
            keys: B x S x K, from `keys(memory)`.
            memory: B x S x He encoder states (the values).
            mask: B x S bool, True = real token.

        Returns:
            context B x He and weights B x S.
        """
        weights = masked_softmax(self.score(query, keys), mask)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)  # B x He
        return context, weights


class DotAttention(Attention):
    """Luong dot: score = h_t . h_s (needs equal encoder and decoder sizes)."""

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(keys, query.unsqueeze(2)).squeeze(2)


class GeneralAttention(Attention):
    """Luong general (bilinear): score = h_t^T W h_s; W h_s is computed once per sentence."""

    def __init__(self, query_size: int, memory_size: int, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(memory_size, query_size, bias=False)

    def keys(self, memory: Tensor, summary: Tensor) -> Tensor:
        return self.proj(memory)  # B x S x Hd

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(keys, query.unsqueeze(2)).squeeze(2)


class AdditiveAttention(Attention):
    """Additive score v^T tanh(W_q q + W_k h_s) (Luong concat; Bahdanau's form)."""

    def __init__(self, query_size: int, memory_size: int, hidden_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(memory_size, hidden_size, bias=False)
        self.query_proj = nn.Linear(query_size, hidden_size, bias=True)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def keys(self, memory: Tensor, summary: Tensor) -> Tensor:
        return self.key_proj(memory)  # B x S x A

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        hidden = torch.tanh(keys + self.query_proj(query).unsqueeze(1))  # B x S x A
        return self.v(hidden).squeeze(2)


class NoAttention(Attention):
    """Fixed context: every step gets the encoder's final summary (Cho et al., 2014).

    The summary travels as the "keys" (B x He), so this module has no parameters and no
    per-step work: the bottleneck that attention removes.
    """

    def keys(self, memory: Tensor, summary: Tensor) -> Tensor:
        return summary

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        return keys, None


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
