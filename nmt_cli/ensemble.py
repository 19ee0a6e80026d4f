"""Ensemble decoding: several models with one vocabulary, probabilities averaged per step.

An `Ensemble` has the same `encode` / `decode_step` interface as one `Seq2Seq`, so the search
functions run it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from nmt_cli.model import DecoderState, Seq2Seq


@dataclass(frozen=True)
class EnsembleState:
    """One decoder state per model, for the same N rows."""

    states: tuple[DecoderState, ...]

    def index_select(self, rows: Tensor, sources: Tensor | None = None) -> EnsembleState:
        return EnsembleState(tuple(s.index_select(rows, sources) for s in self.states))


class Ensemble(nn.Module):
    """Averages the members' next-token probabilities (not log-probabilities)."""

    def __init__(self, models: Sequence[Seq2Seq]) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)
        # The members share a config (checked by the loader), so one flag speaks for all.
        self.reverse_source = models[0].reverse_source

    def members(self) -> list[Seq2Seq]:
        return [cast(Seq2Seq, m) for m in self.models]

    def encode(self, src: Tensor, src_mask: Tensor, src_lengths: Tensor) -> EnsembleState:
        return EnsembleState(tuple(m.encode(src, src_mask, src_lengths) for m in self.members()))

    def decode_step(
        self, prev_tokens: Tensor, state: EnsembleState
    ) -> tuple[Tensor, EnsembleState, Tensor | None]:
        """prev_tokens N -> log of the mean probability N x V, new state, mean attention N x S."""
        steps = [
            m.decode_step(prev_tokens, s) for m, s in zip(self.members(), state.states, strict=True)
        ]
        log_probs = torch.logsumexp(torch.stack([lp for lp, _, _ in steps]), dim=0)
        attention = [a for _, _, a in steps if a is not None]
        mean_attention = torch.stack(attention).mean(0) if attention else None
        new_state = EnsembleState(tuple(s for _, s, _ in steps))
        return log_probs - math.log(len(self.models)), new_state, mean_attention
