"""Batched ancestral sampling: n random translations per source, e.g. for back-translation.

Each of the B sources gets n decoder rows that draw every next token from the model's
distribution, reshaped by a temperature and cut to the top k tokens and/or the top p of the
probability mass (nucleus sampling, Holtzman et al., 2020). All B x n rows advance in one step
call, and rows that draw eos leave the batch, as in greedy search.

With a seed the draws come from one generator on the model's device: the same input, options,
batch size and device give the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nmt_cli.errors import ConfigError
from nmt_cli.hypotheses import Hypothesis, length_penalty, to_hypotheses
from nmt_cli.search import StateT, StepFn


@dataclass(frozen=True)
class Sampling:
    """How to draw each token; checked when made.

    Attributes:
        top_k: draw among the k most probable tokens; 0 = no limit (1 is greedy search).
        top_p: draw among the most probable tokens whose mass reaches p; 1.0 = no limit.
        temperature: divides the logits: < 1 sharper, > 1 flatter.
        seed: seeds the draws (reproducible); None draws from torch's global generator.

    Raises:
        ConfigError: a value out of range.
    """

    top_k: int = 0
    top_p: float = 1.0
    temperature: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.top_k < 0 or not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ConfigError(
                "sampling needs --top-k >= 0, 0 < --top-p <= 1 and --temperature > 0 "
                f"(got {self.top_k}, {self.top_p}, {self.temperature})"
            )


def filter_logits(logits: Tensor, sampling: Sampling) -> Tensor:
    """The logits to draw from: tempered, with tokens outside top-k / top-p set to -inf.

    Args:
        logits: N x V log-probs (or logits), not modified.
        sampling: the temperature and limits.

    Returns:
        N x V.
    """
    logits = logits / sampling.temperature
    if 0 < sampling.top_k < logits.size(1):
        # Exactly k tokens stay, also where several share the k-th value (bf16 scores often
        # do): top-k 1 is greedy search's argmax, the first of equal maxima.
        keep = (
            logits.argmax(dim=1, keepdim=True)
            if sampling.top_k == 1
            else logits.topk(sampling.top_k, dim=1).indices
        )  # N x k
        logits = torch.full_like(logits, float("-inf")).scatter(1, keep, logits.gather(1, keep))
    if sampling.top_p < 1.0:
        ordered, order = logits.sort(dim=1, descending=True)  # N x V
        probs = ordered.softmax(dim=1)
        # Drop a token once the tokens before it already hold p (the first always stays).
        drop = (probs.cumsum(dim=1) - probs) >= sampling.top_p
        logits = logits.scatter(1, order, ordered.masked_fill(drop, float("-inf")))
    return logits


@torch.no_grad()
def sample_search(
    step: StepFn[StateT],
    state: StateT,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_lengths: Tensor,
    sampling: Sampling,
    n: int = 1,
    alpha: float = 1.0,
) -> list[list[Hypothesis]]:
    """Draw n translations per sentence, all sentences at once.

    Args:
        step, state, batch_size, bos_id, eos_id, max_lengths: as for `greedy_search`.
        sampling: how to draw.
        n: samples per sentence.
        alpha: length penalty exponent of the scores (as in beam search).

    Returns:
        For each sentence in input order, n hypotheses (repeats possible), best score first:
        `log_prob` under the model (no temperature or limits), `score` = log_prob / lp.
    """
    if max_lengths.shape != (batch_size,) or n < 1 or batch_size == 0:
        if batch_size == 0:
            return []
        raise ValueError(f"need max_lengths of shape ({batch_size},) and n >= 1")
    device, rows = max_lengths.device, batch_size * n
    generator = _generator(sampling.seed, device)
    # One encoder row per sampled row (as in greedy search), so rows can leave one by one.
    repeat = torch.arange(batch_size, device=device).repeat_interleave(n)  # R
    state = state.index_select(repeat, repeat)
    max_steps = int(max_lengths.max()) + 1  # host sync, once
    alive = torch.arange(rows, device=device)  # R: the original row of each live row
    limit = max_lengths.repeat_interleave(n)  # R
    prev = torch.full((rows,), bos_id, dtype=torch.long, device=device)
    tokens = torch.full((rows, max_steps), eos_id, dtype=torch.long, device=device)
    total = torch.zeros(rows, device=device)  # R, by original row
    lengths = torch.zeros(rows, dtype=torch.long, device=device)
    attention: Tensor | None = None  # rows x T x S
    for t in range(max_steps):
        log_probs, state, attn = step(prev, state)  # R x V, R x S
        probs = filter_logits(log_probs.float(), sampling).softmax(dim=1)
        drawn = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # R
        drawn = drawn.masked_fill(t >= limit, eos_id)
        total[alive] += log_probs.float().gather(1, drawn.unsqueeze(1)).squeeze(1)
        tokens[alive, t] = drawn
        lengths[alive] = t
        if attn is not None:
            if attention is None:
                attention = attn.new_zeros(rows, max_steps, attn.size(-1))
            attention[alive, t] = attn
        keep = (drawn != eos_id).nonzero().squeeze(1)  # the per-step host sync
        if keep.numel() == 0:
            break
        if keep.numel() < drawn.numel():
            state = state.index_select(keep, keep)
            alive, limit, drawn = alive[keep], limit[keep], drawn[keep]
        prev = drawn
    return _by_sentence(tokens, lengths, total, attention, n, alpha)


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    return None if seed is None else torch.Generator(device).manual_seed(seed)


def _by_sentence(
    tokens: Tensor,
    lengths: Tensor,
    log_probs: Tensor,
    attention: Tensor | None,
    n: int,
    alpha: float,
) -> list[list[Hypothesis]]:
    """Rows (R = B x n: tokens R x T, lengths and log_probs R, attention R x T x S) to B lists
    of n hypotheses, best score first."""
    scores = log_probs / length_penalty(lengths + 1, alpha)

    def split(x: Tensor) -> Tensor:
        return x.view(-1, n, *x.shape[1:])  # B x n x ...

    hyps = to_hypotheses(
        split(tokens), split(lengths), split(scores), split(log_probs),
        None if attention is None else split(attention), drop_empty=False,
    )  # fmt: skip
    return [sorted(h, key=lambda h: -h.score) for h in hyps]
