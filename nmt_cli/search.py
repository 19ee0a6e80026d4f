"""Greedy and batched beam search over a model-agnostic decoder step.

The search never looks inside the model. It feeds the previous tokens and the decoder state to
`step`, and asks the state to repeat, reorder or drop rows with `index_select`. Sentences that
finish leave the batch, so later steps only pay for the sentences still being decoded.

Host syncs: the longest (in beam search also the shortest) max length once per call, then one
small `nonzero` per step (which sentences are still live), and the results are copied to the
CPU once, at the end. Finished hypotheses stay on the device: each step merges the new ones
into a fixed-size top-k per sentence.
Beam search stores only a token, a back-pointer and an attention row per beam and step, and
rebuilds the final sequences once, at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import torch
from torch import Tensor

from nmt_cli.hypotheses import Hypothesis, length_penalty, to_hypotheses

__all__ = [
    "BeamGuide",
    "Hypothesis",
    "SearchState",
    "StepFn",
    "beam_search",
    "greedy_search",
    "length_penalty",
    "top_k",
]

_S = TypeVar("_S", bound="SearchState")


class SearchState(Protocol):
    """Decoder state for N rows (sentences or beam hypotheses) over B source rows.

    What depends on the source alone (encoder states) has one row per live sentence, shared by
    N / B consecutive decoder rows: 1 in greedy search and at the first beam step, k after it.
    """

    def index_select(self: _S, rows: Tensor, sources: Tensor | None = None) -> _S:
        """Returns the state for decoder rows `rows` (N' long, repeats allowed) and source rows
        `sources` (B' long; None keeps all B) of this one.

        The caller promises that N' is a multiple of B' and that new rows i*N'/B' ... (i+1)*N'/B'
        - 1 come from rows of source row `sources[i]` (of row i when `sources` is None).
        """
        ...


class BeamGuide(Protocol):
    """Steers which candidates beam search keeps (lexical constraints: nmt_cli.constraints)."""

    def rank(self, cand: Tensor, top_idx: Tensor, forced: Tensor) -> tuple[Tensor, Tensor]:
        """Given the N x (k * V) candidate scores, the columns of their top 2k (N x 2k) and the
        sentences at their length limit (N), returns the scores and columns of N x M >= 2k
        candidates in the order the search takes them: eos within the first k finishes, the
        first k others form the next beam."""
        ...

    def advance(self, live: Tensor, keep: Tensor | None) -> None:
        """The search kept candidates `live` (N x k positions in `rank`'s order) as beams, and
        goes on with sentences `keep` (N' indices; None: all)."""
        ...


StateT = TypeVar("StateT", bound=SearchState)

# step(prev_tokens N long, state for N rows) -> (log-probs N x V, state for N rows, attention N x S
# or None). Generic in the state type, so `Seq2Seq.decode_step` type-checks as a StepFn. The
# search owns the returned log-probs and may overwrite them.
StepFn = Callable[[Tensor, StateT], tuple[Tensor, StateT, Tensor | None]]


_BLOCK = 128  # columns per block in `top_k` (benchmarks/README.md: 64-128 did best)


def top_k(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """`x.topk(k, dim=1)`: the k largest values of each row of x (N x V) and their columns,
    best first.

    On the CPU, in two passes: torch.topk runs a selection over the whole row, but the k
    largest values lie in the k blocks with the largest maxima, and a max per block is one
    vectorized pass. Selecting among those blocks' columns gives the same values, several
    times faster at beam search's k x vocabulary candidates. Among equal values the two may pick
    different columns (with bf16 logits, 3 of test_2016's 1,000 beam-5 translations changed).
    Greedy search keeps torch.argmax: two passes were no faster there in a whole decode.
    """
    n, v = x.shape
    blocks = v // _BLOCK
    if x.device.type != "cpu" or blocks < 4 * k:
        return x.topk(k, dim=1)
    maxima = x[:, : blocks * _BLOCK].view(n, blocks, _BLOCK).amax(dim=2)  # N x blocks
    best_blocks = maxima.topk(k, dim=1).indices  # N x k
    columns = best_blocks.unsqueeze(2) * _BLOCK + torch.arange(_BLOCK)  # N x k x BLOCK
    columns = columns.view(n, -1)
    if v % _BLOCK:  # the columns after the last whole block are always candidates
        columns = torch.cat([columns, torch.arange(blocks * _BLOCK, v).expand(n, -1)], dim=1)
    values, picked = x.gather(1, columns).topk(k, dim=1)
    return values, columns.gather(1, picked)


@torch.no_grad()
def greedy_search(
    step: StepFn[StateT],
    state: StateT,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_lengths: Tensor,
) -> list[Hypothesis]:
    """Decodes by taking the most probable token at each step.

    Args:
        step: The decoder step (see `StepFn`).
        state: State for the B sentences, row i = sentence i.
        batch_size: B.
        bos_id: Token fed at the first step.
        eos_id: Token that ends a sentence.
        max_lengths: B long, on the model's device: the most tokens before eos; at step
            `max_lengths[i]` eos is the only token allowed.

    Returns:
        One hypothesis per sentence, in input order; `score` equals `log_prob`.
    """
    _check_lengths(max_lengths, batch_size)
    if batch_size == 0:
        return []
    device = max_lengths.device
    max_steps = int(max_lengths.max()) + 1  # host sync, once
    alive = torch.arange(batch_size, device=device)  # N: original sentence of each row
    limit = max_lengths.clone()  # N
    prev = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)  # N
    total = torch.zeros(batch_size, device=device)  # N
    # By original sentence; a sentence's last write is at the step it finishes.
    tokens = torch.full((batch_size, max_steps), eos_id, dtype=torch.long, device=device)  # B x T
    log_probs_out = torch.zeros(batch_size, device=device)  # B
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)  # B
    attention: Tensor | None = None  # B x T x S
    for t in range(max_steps):
        log_probs, state, attn = step(prev, state)  # N x V, N x S
        log_probs = log_probs.float()
        best = log_probs.argmax(dim=-1).masked_fill(t >= limit, eos_id)  # N
        total = total + log_probs.gather(1, best.unsqueeze(1)).squeeze(1)
        tokens[alive, t] = best
        log_probs_out[alive] = total
        lengths[alive] = t
        if attn is not None:
            if attention is None:
                attention = attn.new_zeros(batch_size, max_steps, attn.size(-1))
            attention[alive, t] = attn
        keep = (best != eos_id).nonzero().squeeze(1)  # the per-step host sync
        if keep.numel() == 0:
            break
        if keep.numel() < best.numel():
            state = state.index_select(keep, keep)
            alive, limit, total, best = alive[keep], limit[keep], total[keep], best[keep]
        prev = best
    # One hypothesis per sentence: n = 1 in to_hypotheses' B x n x ..., score = log_prob.
    attention = None if attention is None else attention.unsqueeze(1)
    tokens, lengths, log_probs_out = (t.unsqueeze(1) for t in (tokens, lengths, log_probs_out))
    hyps = to_hypotheses(tokens, lengths, log_probs_out, log_probs_out, attention, False)
    return [h[0] for h in hyps]


@torch.no_grad()
def beam_search(
    step: StepFn[StateT],
    state: StateT,
    batch_size: int,
    beam_size: int,
    bos_id: int,
    eos_id: int,
    max_lengths: Tensor,
    alpha: float = 1.0,
    n_best: int = 1,
    guide: BeamGuide | None = None,
) -> list[list[Hypothesis]]:
    """Batched beam search: all live beams of all live sentences advance in one step call.

    Each step takes the top 2k candidates (beam x vocab) per sentence. Candidates that end in eos
    and rank within the top k are finished with score `log_prob / length_penalty(length, alpha)`;
    the k best candidates that do not end in eos form the next beam. Each beam has one eos
    candidate, so finished hypotheses never shrink the beam (as in fairseq). At the first step
    every beam would hold the same prefix, so the step runs once per sentence and its candidates
    fill beam 0 (the state grows to k rows per sentence after it; the k rows share one copy of
    the sentence's encoder states). With k = 1 this takes exactly greedy search's choices.

    Early stopping: a sentence is done when it has k finished hypotheses and its best live
    hypothesis, normalized as if it ended at its current length, scores no better than the worst
    of them, or when it reaches its max length (eos is then forced on every beam). Live log-probs
    never rise, so for alpha = 0 this is exact. For alpha > 0 a longer hypothesis could still win
    through its larger penalty. A true bound (normalizing by the penalty at max length) would run
    almost every sentence to its max length. Like Hugging Face's default, we accept the
    heuristic, and it keeps beam 1 equal to greedy. Comparing with the best finished one instead
    of the k-th (enough for n_best = 1 at alpha = 0) decodes Multi30k 15 % faster but loses
    0.6 BLEU at alpha = 1: the longer hypotheses found later win.

    Args:
        step: The decoder step (see `StepFn`).
        state: State for the B sentences, row i = sentence i.
        batch_size: B.
        beam_size: k, live hypotheses per sentence.
        bos_id: Token fed at the first step.
        eos_id: Token that ends a sentence.
        max_lengths: B long, on the model's device: the most tokens before eos; at step
            `max_lengths[i]` eos is the only token allowed.
        alpha: Length penalty strength; 0 ranks by summed log-prob.
        n_best: Hypotheses returned per sentence, at most `beam_size`.
        guide: Reorders (and adds to) each step's candidates, e.g. for lexical constraints.

    Returns:
        For each sentence in input order, up to `n_best` distinct hypotheses, best first (fewer
        only when fewer sequences exist, e.g. max length 0).
    """
    _check_lengths(max_lengths, batch_size)
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(
            f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size=}, {n_best=}"
        )
    if batch_size == 0:
        return []
    k, device = beam_size, max_lengths.device
    shortest, longest = torch.aminmax(max_lengths)
    first_forced, max_steps = int(shortest), int(longest) + 1  # host syncs, once
    # Row n*width + j of the state is beam j of live sentence n: width is 1 at the first step
    # (one row per sentence), k after it.
    width = 1
    alive = torch.arange(batch_size, device=device)  # N: original sentence of each live one
    limit = max_lengths.clone()  # N
    prev = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)  # N*width
    beam_scores = torch.zeros(batch_size, k, device=device)  # N x k, summed log-probs
    beam_scores[:, 1:] = float("-inf")  # only beam 0 exists at the first step
    # History by step and original sentence, for rebuilding sequences at the end.
    hist_tokens = torch.zeros(max_steps, batch_size, k, dtype=torch.long, device=device)
    hist_parents = torch.zeros_like(hist_tokens)  # input beam each new beam extends
    hist_attention: Tensor | None = None  # steps x B x k x S, by input beam
    # The k best finished hypotheses of each live sentence, best first: N x k each.
    fin_scores = torch.full((batch_size, k), float("-inf"), device=device)
    fin_log_probs = torch.zeros(batch_size, k, device=device)
    fin_steps = torch.zeros(batch_size, k, dtype=torch.long, device=device)  # step of eos
    fin_beams = torch.zeros_like(fin_steps)  # input beam that produced eos
    # The same by original sentence (B x k); a sentence's last write is at its final step.
    out_scores, out_log_probs = fin_scores.clone(), fin_log_probs.clone()
    out_steps, out_beams = fin_steps.clone(), fin_beams.clone()
    for t in range(max_steps):
        n = alive.numel()
        log_probs, state, attn = step(prev, state)  # N*width x V, N*width x S
        vocab = log_probs.size(-1)
        forced = t >= limit  # N
        # N x k x V; in place where it can (no fresh N x k x V buffer per step)
        if width == k:
            cand = log_probs.float().view(n, k, vocab).add_(beam_scores.unsqueeze(2))
        else:  # width 1: beams 1.. get -inf from their scores
            cand = beam_scores.unsqueeze(2) + log_probs.float().reshape(n, width, vocab)
        if t >= first_forced:  # before it no sentence is at its max length
            not_eos = torch.arange(vocab, device=device) != eos_id
            cand.masked_fill_(forced.view(n, 1, 1) & not_eos, float("-inf"))
        cand = cand.view(n, -1)
        top_scores, top_idx = top_k(cand, 2 * k)  # N x 2k, best first
        if guide is not None:  # N x M, in the guide's order
            top_scores, top_idx = guide.rank(cand, top_idx, forced)
        top_beams = torch.div(top_idx, vocab, rounding_mode="floor")
        top_tokens = top_idx % vocab
        is_eos = top_tokens == eos_id  # N x 2k

        # Finish eos candidates within the top k and keep each sentence's k best finished.
        new_fin = is_eos[:, :k] & (top_scores[:, :k] > float("-inf"))
        new_scores = top_scores[:, :k] / length_penalty(t + 1, alpha)
        new_scores = new_scores.masked_fill(~new_fin, float("-inf"))
        fin_scores, order = torch.cat([fin_scores, new_scores], dim=1).topk(k, dim=1)
        fin_log_probs = torch.cat([fin_log_probs, top_scores[:, :k]], dim=1).gather(1, order)
        fin_steps = torch.cat([fin_steps, torch.full_like(fin_steps, t)], dim=1).gather(1, order)
        fin_beams = torch.cat([fin_beams, top_beams[:, :k]], dim=1).gather(1, order)

        # Next beam: the k best candidates not ending in eos (stable sort keeps rank order).
        live = torch.sort(is_eos.to(torch.uint8), dim=1, stable=True).indices[:, :k]  # N x k
        beam_scores = top_scores.gather(1, live)
        parents = top_beams.gather(1, live)
        tokens = top_tokens.gather(1, live)

        hist_tokens[t, alive] = tokens
        hist_parents[t, alive] = parents
        if attn is not None:
            if hist_attention is None:
                hist_attention = attn.new_zeros(max_steps, batch_size, k, attn.size(-1))
            hist_attention[t, alive] = attn.reshape(n, width, -1)  # broadcast at width 1
        out_scores[alive], out_log_probs[alive] = fin_scores, fin_log_probs
        out_steps[alive], out_beams[alive] = fin_steps, fin_beams

        # -inf when none is live (a guide's order need not put the best first)
        best_live = beam_scores.amax(dim=1) / length_penalty(t + 1, alpha)
        done = forced | (best_live <= fin_scores[:, -1])
        keep = (~done).nonzero().squeeze(1)  # the per-step host sync
        if keep.numel() == 0:
            break
        if guide is not None:
            guide.advance(live, keep if keep.numel() < n else None)
        # N x k state rows (a -inf candidate of a beam that does not exist yet maps to beam 0)
        rows = parents.clamp(max=width - 1) + width * torch.arange(n, device=device).unsqueeze(1)
        sources = None
        if keep.numel() < n:
            rows, tokens, beam_scores = rows[keep], tokens[keep], beam_scores[keep]
            alive, limit = alive[keep], limit[keep]
            fin_scores, fin_log_probs = fin_scores[keep], fin_log_probs[keep]
            fin_steps, fin_beams = fin_steps[keep], fin_beams[keep]
            sources = keep
        state = state.index_select(rows.view(-1), sources)
        prev, width = tokens.view(-1), k

    steps_run = t + 1
    out_tokens, out_attention = _backtrack(
        hist_tokens[:steps_run],
        hist_parents[:steps_run],
        None if hist_attention is None else hist_attention[:steps_run],
        out_steps[:, :n_best],
        out_beams[:, :n_best],
        eos_id,
    )
    return to_hypotheses(
        out_tokens,
        out_steps[:, :n_best],
        out_scores[:, :n_best],
        out_log_probs[:, :n_best],
        out_attention,
        drop_empty=True,
    )


def _backtrack(
    hist_tokens: Tensor,
    hist_parents: Tensor,
    hist_attention: Tensor | None,
    steps: Tensor,
    beams: Tensor,
    eos_id: int,
) -> tuple[Tensor, Tensor | None]:
    """Rebuilds finished hypotheses by following back-pointers, all at once.

    Args:
        hist_tokens: T x B x k, the token new beam j took at step t.
        hist_parents: T x B x k, the input beam new beam j extended at step t.
        hist_attention: T x B x k x S, the attention of input beam j at step t, or None.
        steps: B x n, the step at which each hypothesis took eos.
        beams: B x n, the input beam that took it.
        eos_id: Token written at and after each hypothesis's eos.

    Returns:
        Tokens B x n x T and attention B x n x T x S (or None); position t of hypothesis
        (b, j) is meaningful for t <= steps[b, j].
    """
    n_steps, batch, _ = hist_tokens.shape
    sent = torch.arange(batch, device=steps.device).unsqueeze(1).expand_as(steps)  # B x n
    ptr = beams.clone()  # the input beam at step t (at t == steps: the one that took eos)
    tokens = torch.full((*steps.shape, n_steps), eos_id, dtype=torch.long, device=steps.device)
    attention = None
    if hist_attention is not None:
        attention = hist_attention.new_zeros(*steps.shape, n_steps, hist_attention.size(-1))
    for t in reversed(range(n_steps)):
        before = t < steps  # B x n: position t holds a real token
        # Here ptr is the beam step t produced; step t's parent of it is the input beam at t.
        tokens[:, :, t] = torch.where(before, hist_tokens[t, sent, ptr], eos_id)
        ptr = torch.where(before, hist_parents[t, sent, ptr], ptr)
        if attention is not None and hist_attention is not None:
            attention[:, :, t] = hist_attention[t, sent, ptr]
    return tokens, attention


def _check_lengths(max_lengths: Tensor, batch_size: int) -> None:
    """Raises ValueError unless `max_lengths` is a long tensor of shape (batch_size,)."""
    if max_lengths.shape != (batch_size,) or max_lengths.dtype != torch.long:
        raise ValueError(
            f"max_lengths must be a long tensor of shape ({batch_size},), "
            f"got {max_lengths.dtype} {tuple(max_lengths.shape)}"
        )
