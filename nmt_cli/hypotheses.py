"""What a search returns: finished hypotheses, their GNMT length penalty, and the one copy of
a search's results from the device to the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

from torch import Tensor


@dataclass
class Hypothesis:
    """One finished output sequence.

    Attributes:
        tokens: Output ids, without bos and eos.
        score: The score used for ranking: `log_prob / length_penalty(len(tokens) + 1, alpha)`
            in beam search, `log_prob` in greedy search.
        log_prob: Sum of the token log-probs, eos included.
        attention: T x S on the CPU, one row per output token including eos (T = len(tokens) + 1),
            or None when the step returns no attention.
    """

    tokens: list[int]
    score: float
    log_prob: float
    attention: Tensor | None = None


@overload
def length_penalty(length: int, alpha: float) -> float: ...
@overload
def length_penalty(length: Tensor, alpha: float) -> Tensor: ...
def length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    """GNMT length penalty `((5 + length) / 6) ** alpha` (Wu et al., 2016).

    Args:
        length: Output length(s) including eos: an int, or a long tensor of any shape.
        alpha: Strength; 0 means no normalization (the penalty is 1).

    Returns:
        The divisor for the summed log-prob, a float or a float tensor shaped like `length`.
    """
    return ((5 + length) / 6) ** alpha


def to_hypotheses(
    tokens: Tensor,
    lengths: Tensor,
    scores: Tensor,
    log_probs: Tensor,
    attention: Tensor | None,
    drop_empty: bool,
) -> list[list[Hypothesis]]:
    """Copies results to the CPU once and splits them into hypotheses.

    Args:
        tokens: B x n x T output ids.
        lengths: B x n, tokens before eos.
        scores: B x n ranking scores.
        log_probs: B x n summed log-probs.
        attention: B x n x T x S or None.
        drop_empty: Drop slots scored -inf (beam slots no hypothesis filled).

    Returns:
        For each of the B sentences, its hypotheses in slot order.
    """
    tokens_cpu = tokens.cpu()
    attention_cpu = None if attention is None else attention.cpu()
    result: list[list[Hypothesis]] = []
    for b, (lens, scs, lps) in enumerate(
        zip(lengths.tolist(), scores.tolist(), log_probs.tolist(), strict=True)
    ):
        hyps = []
        for j, (length, score, log_prob) in enumerate(zip(lens, scs, lps, strict=True)):
            if drop_empty and score == float("-inf"):
                continue
            att = None if attention_cpu is None else attention_cpu[b, j, : length + 1].clone()
            hyps.append(Hypothesis(tokens_cpu[b, j, :length].tolist(), score, log_prob, att))
        result.append(hyps)
    return result
