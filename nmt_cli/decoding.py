"""Search dispatch: token-id sources in, hypotheses out, for one model or an ensemble.

Picks greedy or beam search for a batch, and cuts many sources into length-sorted batches.
Used by translation (`Translator`) and by validation BLEU in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

from nmt_cli.constraints import LexicalConstraints, Phrases
from nmt_cli.data import make_source_batch
from nmt_cli.model import Seq2Seq
from nmt_cli.search import Hypothesis, StepFn, beam_search, greedy_search
from nmt_cli.special_ids import BOS_ID, EOS_ID

if TYPE_CHECKING:  # training validates with a plain Seq2Seq
    from nmt_cli.ensemble import Ensemble


@torch.inference_mode()
def search_batch(
    model: Seq2Seq | Ensemble,
    sources: Sequence[Tensor],
    device: torch.device,
    beam: int,
    alpha: float,
    max_len_a: float,
    max_len_b: int,
    n_best: int = 1,
    with_attention: bool = True,
    constraints: Sequence[Phrases] | None = None,
) -> list[list[Hypothesis]]:
    """Translate token-id sources as one batch: n_best hypotheses each.

    Args:
        model: a Seq2Seq or an Ensemble, on `device`, in eval mode.
        sources: B id sequences, each S_i >= 1 long (1-D, on the CPU).
        device: where the model runs.
        beam: beam size; 1 (with n_best 1) is greedy search.
        alpha: the length penalty's exponent (beam search).
        max_len_a: a source of S_i tokens gets at most `S_i * max_len_a + max_len_b` tokens.
        max_len_b: see max_len_a.
        n_best: hypotheses per source; the beam is widened to it if smaller.
        with_attention: record each hypothesis' attention (T x S); without it the search
            stores none.
        constraints: for each source, target phrases (token ids) its outputs must contain
            (see nmt_cli.constraints); with any, even beam 1 runs beam search.

    Returns:
        B lists of n_best hypotheses, best first, in the order of `sources`.
    """
    src, mask, lengths = make_source_batch(sources)  # B x S, B x S, B
    state = model.encode(src.to(device), mask.to(device), lengths)
    max_lengths = (lengths.float() * max_len_a + max_len_b).long().to(device)  # B
    step = cast("StepFn[Any]", model.decode_step)
    if not with_attention:
        step = _without_attention(step)
    guide = None
    if constraints is not None and any(constraints):
        guide = LexicalConstraints(constraints, max(beam, n_best), EOS_ID, device)
    elif beam == 1 and n_best == 1:
        hyps = greedy_search(step, state, len(sources), BOS_ID, EOS_ID, max_lengths)
        return [[h] for h in hyps]
    return beam_search(
        step,
        state,
        len(sources),
        max(beam, n_best),
        BOS_ID,
        EOS_ID,
        max_lengths,
        alpha,
        n_best,
        guide,
    )


def _without_attention(step: StepFn[Any]) -> StepFn[Any]:
    """`step`, returning no attention: the search then keeps no T x S matrix per sentence."""

    def no_attention(prev: Tensor, state: Any) -> tuple[Tensor, Any, None]:
        log_probs, state, _ = step(prev, state)
        return log_probs, state, None

    return no_attention


def search_sorted(
    model: Seq2Seq | Ensemble,
    sources: Sequence[Tensor],
    device: torch.device,
    batch_size: int,
    constraints: Sequence[Phrases] | None = None,
    **options: Any,
) -> list[list[Hypothesis]]:
    """Translate many sources in length-sorted batches (less padding); results in input order.

    Args:
        model: as for `search_batch`.
        sources: any number of 1-D id sequences, each >= 1 long.
        device: where the model runs.
        batch_size: sources per search batch.
        constraints: target phrases for each source (see `search_batch`).
        **options: `search_batch`'s beam, alpha, max_len_a, max_len_b, n_best and
            with_attention.

    Returns:
        One list of hypotheses per source, in the order of `sources`.
    """
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[Hypothesis]] = [[] for _ in sources]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        if constraints is not None:
            options["constraints"] = [constraints[i] for i in chunk]
        for i, hyps in zip(
            chunk, search_batch(model, [sources[i] for i in chunk], device, **options), strict=True
        ):
            results[i] = hyps
    return results
