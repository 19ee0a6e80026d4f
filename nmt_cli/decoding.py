"""Search dispatch: token-id sources in, hypotheses out, for one model or an ensemble.

Picks greedy or beam search for a batch, and cuts many sources into length-sorted batches.
Used by translation (`Translator`) and by validation BLEU in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

from nmt_cli.batch_threads import for_each_batch
from nmt_cli.constraints import LexicalConstraints, Phrases
from nmt_cli.data import make_source_batch
from nmt_cli.errors import ConfigError
from nmt_cli.model import Seq2Seq
from nmt_cli.repetition import guarded, remove_coverage_bonus
from nmt_cli.sampling import Sampling, sample_search
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
    no_repeat_ngram: int = 0,
    coverage_penalty: float = 0.0,
    sampling: Sampling | None = None,
) -> list[list[Hypothesis]]:
    """Translate token-id sources as one batch: n_best hypotheses each.

    Args:
        model: a Seq2Seq or an Ensemble, on `device`, in eval mode.
        sources: B id sequences, each S_i >= 1 long (1-D, on the CPU).
        device: where the model runs.
        beam: beam size; 1 (with n_best 1) is greedy search.
        alpha: the length penalty's exponent (beam search).
        max_len_a, max_len_b: a source of S_i tokens gets at most `S_i * a + b` tokens.
        n_best: hypotheses per source; the beam is widened to it if smaller.
        with_attention: record each hypothesis' attention (T x S); else none is stored.
        constraints: per source, target phrases (ids) its outputs contain (nmt_cli.constraints).
        no_repeat_ngram: block repeated n-grams of this size (0: off; nmt_cli.repetition).
        coverage_penalty: GNMT's coverage penalty beta (0: off; always a beam search).
        sampling: draw n_best samples per source instead of searching (nmt_cli.sampling).

    Returns:
        B lists of n_best hypotheses, best first, in the order of `sources`.
    """
    src, mask, lengths = make_source_batch(sources)  # B x S, B x S, B
    mask = mask.to(device)
    state: Any = model.encode(src.to(device), mask, lengths)
    max_lengths = (lengths.float() * max_len_a + max_len_b).long().to(device)  # B
    step = cast("StepFn[Any]", model.decode_step)
    constrained = constraints is not None and any(constraints)
    if sampling is not None and constrained:
        raise ConfigError("constraints do not combine with sampling (--sample)")
    coverage_penalty = 0.0 if sampling else coverage_penalty  # it ranks beam search's finals
    if no_repeat_ngram or coverage_penalty:
        step, state = guarded(step, state, mask, EOS_ID, no_repeat_ngram, coverage_penalty, alpha)
    step = step if with_attention else _without_attention(step)
    batch, k = len(sources), max(beam, n_best)
    if sampling is not None:
        return sample_search(
            step, state, batch, BOS_ID, EOS_ID, max_lengths, sampling, n_best, alpha
        )
    guide = (
        LexicalConstraints(constraints, k, EOS_ID, device) if constraints and constrained else None
    )
    if guide is None and k == 1 and not coverage_penalty:
        return [[h] for h in greedy_search(step, state, batch, BOS_ID, EOS_ID, max_lengths)]
    hyps = beam_search(step, state, batch, k, BOS_ID, EOS_ID, max_lengths, alpha, n_best, guide)
    if coverage_penalty:
        remove_coverage_bonus(hyps, lengths.tolist(), coverage_penalty, alpha)
    return hyps


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

    On the CPU two batches are searched at a time (`batch_threads`).

    Args:
        model: as for `search_batch`.
        sources: any number of 1-D id sequences, each >= 1 long.
        device: where the model runs.
        batch_size: sources per search batch.
        constraints: target phrases for each source (see `search_batch`).
        **options: `search_batch`'s beam, alpha, max_len_a, max_len_b, n_best, and the
            optional with_attention, no_repeat_ngram, coverage_penalty and sampling.

    Returns:
        One list of hypotheses per source, in the order of `sources`.
    """
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[Hypothesis]] = [[] for _ in sources]

    def search(chunk: list[int]) -> None:
        batch_options = options
        if constraints is not None:
            batch_options = {**options, "constraints": [constraints[i] for i in chunk]}
        hyps = search_batch(model, [sources[i] for i in chunk], device, **batch_options)
        for i, found in zip(chunk, hyps, strict=True):
            results[i] = found

    for_each_batch(search, order, batch_size, device)
    return results
