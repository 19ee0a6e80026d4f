"""Repetition safeguards for any search: n-gram blocking and the GNMT coverage penalty.

Both wrap the step function and its state, so the searches in nmt_cli/search.py and
nmt_cli/sampling.py run unchanged: `guarded(step, state, ...)` returns a step and a state to
hand them. The guarded state carries each row's tokens so far (and the attention it has paid to
each source piece), and reorders them with the model's state in `index_select`.

- No repeated n-gram (fairseq's `--no-repeat-ngram-size`): a token that would complete an n-gram
  already in the row's output gets log-prob -inf.
- Coverage penalty (Wu et al., 2016, eq. 14): a hypothesis that ends at output length L is
  ranked by `log_prob / lp(L) + beta * sum_j log(min(coverage_j, 1))`, where coverage_j is the
  attention summed over its steps on source piece j (eos's step included). The search divides
  the summed log-prob by lp(L) when eos is taken, so the guard adds `beta * cp * lp(L)` to eos's
  log-prob: the finished score comes out exactly as GNMT's. Only eos is touched: live
  hypotheses keep their plain log-probs. `Hypothesis.log_prob` then includes the bonus; the
  caller removes it with `coverage_bonus` (see nmt_cli/decoding.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from nmt_cli.errors import ConfigError
from nmt_cli.hypotheses import Hypothesis, length_penalty
from nmt_cli.search import SearchState, StepFn

# Coverage below this counts as this (log(0) would make every unattended piece -inf).
_MIN_COVERAGE = 1e-6


@dataclass(frozen=True)
class GuardedState:
    """A model state plus what the guards need per decoder row.

    Attributes:
        inner: the model's state, N rows.
        history: N x L, the tokens fed so far (bos first); L = steps run.
        coverage: N x S, attention summed over the steps run, or None without a coverage penalty.
        source_mask: N x S, True on real source pieces (not padding), or None likewise.
    """

    inner: Any
    history: Tensor
    coverage: Tensor | None
    source_mask: Tensor | None

    def index_select(self, rows: Tensor, sources: Tensor | None = None) -> GuardedState:
        """The rows `rows` (the model's state also drops source rows not in `sources`)."""
        return GuardedState(
            self.inner.index_select(rows, sources),
            self.history.index_select(0, rows),
            None if self.coverage is None else self.coverage.index_select(0, rows),
            None if self.source_mask is None else self.source_mask.index_select(0, rows),
        )


def guarded(
    step: StepFn[Any],
    state: SearchState,
    source_mask: Tensor,
    eos_id: int,
    no_repeat_ngram: int = 0,
    coverage_penalty: float = 0.0,
    alpha: float = 0.0,
) -> tuple[StepFn[GuardedState], GuardedState]:
    """Wrap a step and its initial state (one row per sentence) in the guards.

    Args:
        step: the model's decoder step (see `StepFn`).
        state: its state for B sentences, row i = sentence i.
        source_mask: B x S, True on real source pieces, on the model's device.
        eos_id: the token that ends a sentence (it gets the coverage bonus).
        no_repeat_ngram: n >= 1 blocks every repeated n-gram; 0 blocks nothing.
        coverage_penalty: GNMT's beta; 0 turns the penalty off. Needs a step that returns
            attention.
        alpha: the search's length penalty exponent (the bonus is scaled by lp(L)).

    Returns:
        The guarded step and state, to pass to `beam_search` / `greedy_search` / `sample_search`.
    """
    batch = source_mask.size(0)
    history = source_mask.new_zeros(batch, 0, dtype=torch.long)  # B x 0
    use_coverage = coverage_penalty > 0
    start = GuardedState(
        state,
        history,
        source_mask.new_zeros(source_mask.shape, dtype=torch.float) if use_coverage else None,
        source_mask if use_coverage else None,
    )

    def guarded_step(prev: Tensor, st: GuardedState) -> tuple[Tensor, GuardedState, Tensor | None]:
        log_probs, inner, attn = step(prev, st.inner)  # N x V, N x S
        log_probs = log_probs.float()
        history = torch.cat([st.history, prev.unsqueeze(1)], dim=1)  # N x L
        if no_repeat_ngram > 0:
            block_repeats(log_probs, history, no_repeat_ngram)
        coverage = st.coverage
        if coverage is not None and st.source_mask is not None:
            if attn is None:
                raise ConfigError(
                    "--coverage-penalty needs a model with attention (model.attention: none)"
                )
            coverage = coverage + attn.float()
            bonus = coverage_bonus(coverage, st.source_mask, coverage_penalty)  # N
            log_probs[:, eos_id] += bonus * length_penalty(history.size(1), alpha)
        return log_probs, GuardedState(inner, history, coverage, st.source_mask), attn

    return guarded_step, start


def block_repeats(log_probs: Tensor, history: Tensor, n: int) -> None:
    """Set to -inf, in place, the log-prob of every token that would repeat an n-gram.

    Args:
        log_probs: N x V, the next token's log-probs.
        history: N x L, each row's tokens so far; the next token follows history[:, -1].
        n: the n-gram size (1 forbids any token already in the row).
    """
    length = history.size(1)
    if length < n:  # no whole n-gram yet (a 1-gram needs one token)
        return
    grams = history.unfold(1, n, 1)  # N x (L - n + 1) x n, every n-gram so far
    if n == 1:
        seen = torch.ones(grams.shape[:2], dtype=torch.bool, device=history.device)
    else:
        suffix = history[:, length - n + 1 :]  # N x (n - 1): what the next token extends
        seen = (grams[:, :, :-1] == suffix.unsqueeze(1)).all(dim=2)  # N x (L - n + 1)
    vocab = log_probs.size(1)
    # The token each seen n-gram ended with; unseen ones point at a spare column V.
    banned = grams[:, :, -1].masked_fill(~seen, vocab)  # N x (L - n + 1)
    mask = torch.zeros(log_probs.size(0), vocab + 1, dtype=torch.bool, device=log_probs.device)
    mask.scatter_(1, banned, True)  # one scatter, no host sync
    log_probs.masked_fill_(mask[:, :vocab], float("-inf"))


def coverage_bonus(coverage: Tensor, source_mask: Tensor, beta: float) -> Tensor:
    """GNMT's coverage penalty term `beta * sum_j log(min(coverage_j, 1))` (<= 0) per row.

    Args:
        coverage: N x S, attention summed over a hypothesis' steps.
        source_mask: N x S, True on real source pieces.
        beta: the penalty's weight.

    Returns:
        N, the term to add to the length-normalized score.
    """
    logs = coverage.clamp(min=_MIN_COVERAGE, max=1.0).log().masked_fill(~source_mask, 0.0)
    return beta * logs.sum(dim=1)


def remove_coverage_bonus(
    hyps: list[list[Hypothesis]], source_lengths: list[int], beta: float, alpha: float
) -> None:
    """Take the coverage bonus back out of each hypothesis' `log_prob`, in place (`score`
    keeps it: it ranked them), up to rounding.

    Args:
        hyps: B lists of hypotheses from a guarded beam search, with attention (T x S).
        source_lengths: B, the real source pieces of each sentence.
        beta: the coverage penalty the search used.
        alpha: its length penalty exponent.
    """
    for sentence, length in zip(hyps, source_lengths, strict=True):
        for h in sentence:
            if h.attention is None:
                continue
            coverage = h.attention[:, :length].float().sum(dim=0, keepdim=True)  # 1 x S
            mask = torch.ones_like(coverage, dtype=torch.bool)
            bonus = float(coverage_bonus(coverage, mask, beta)[0])
            h.log_prob -= bonus * length_penalty(len(h.tokens) + 1, alpha)
