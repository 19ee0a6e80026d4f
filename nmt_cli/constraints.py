"""Lexically constrained beam search: target phrases that must appear in every output.

`LexicalConstraints` steers `beam_search` (its `guide` hook) by dynamic beam allocation
(Post & Vilar, 2018): hypotheses are grouped in banks by how many constraint pieces they have
met, and the k beam slots are dealt to the banks in turn, best candidate of each bank first
(higher banks first within a turn; slots a bank cannot fill go to the others). Besides the
model's top 2k candidates, every beam proposes the next piece of each constraint it has not
met, its own best piece and eos, so a hypothesis that is behind the model's favourites can
still advance a constraint. eos is allowed only to hypotheses that met every constraint, except
at the length limit, where it ends every hypothesis (the caller reports the unmet constraints).

Each constraint is a phrase of one or more pieces, met when its pieces appear in order and
contiguously. Per hypothesis and constraint we keep whether it is met and, if not, how many of
its first pieces end the hypothesis (a KMP automaton, so "a a b" is still found in "a a a b").
All of it is batched: state tensors of N sentences x k beams x C constraints, no Python loop
over sentences or beams.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# Phrases of one sentence as token ids: C lists of pieces each.
Phrases = Sequence[Sequence[int]]


class LexicalConstraints:
    """The constraint state of a beam search over N sentences with k beams each.

    Implements `nmt_cli.search.BeamGuide`: `rank` reorders each step's candidates, `advance`
    follows the beams the search kept.
    """

    def __init__(
        self, phrases: Sequence[Phrases], beam_size: int, eos_id: int, device: torch.device
    ) -> None:
        """
        Args:
            phrases: for each of the B sentences, its constraints (phrases of >= 1 token ids,
                none of them eos); a sentence may have none.
            beam_size: k.
            eos_id: the token that ends a sentence.
            device: where the search runs.
        """
        if any(not p or eos_id in p for ps in phrases for p in ps):
            raise ValueError("every constraint needs >= 1 token and no eos")
        n_cons = max((len(ps) for ps in phrases), default=0) or 1
        width = max((len(p) for ps in phrases for p in ps), default=0) or 1
        padded = [[list(p) + [-1] * (width - len(p)) for p in ps] for ps in phrases]
        padded = [ps + [[-1] * width] * (n_cons - len(ps)) for ps in padded]
        self.k, self.eos_id = beam_size, eos_id
        on_cpu = torch.tensor(padded, dtype=torch.long)  # B x C x L, -1 after a phrase's end
        self.phrases = on_cpu.to(device)
        self.lengths = (self.phrases >= 0).sum(2)  # B x C; 0 = no constraint in this slot
        self.fallback = _fallback_table(on_cpu).to(device)  # B x C x (L + 1) x L
        # The most pieces a hypothesis can meet: the number of banks - 1 (host side, once).
        self.top_bank = max((sum(len(p) for p in ps) for ps in phrases), default=0)
        batch = len(phrases)
        # Per hypothesis (N x k x C): constraint met; pieces of it that end the hypothesis.
        self.met = (self.lengths == 0).unsqueeze(1).expand(batch, beam_size, n_cons).clone()
        self.progress = torch.zeros_like(self.met, dtype=torch.long)
        # Per sentence (N): a hypothesis that met every constraint has finished.
        self.finished = torch.zeros(batch, dtype=torch.bool, device=device)
        self._next_met, self._next_progress = self.met, self.progress  # N x M x C after rank

    def rank(self, cand: Tensor, top_idx: Tensor, forced: Tensor) -> tuple[Tensor, Tensor]:
        """This step's candidates, in the order the search should take them.

        Args:
            cand: N x (k * V) scores of every (beam, token), -inf where impossible.
            top_idx: N x 2k, the columns (beam * V + token) of the model's best candidates.
            forced: N, sentences at their length limit (only eos is possible).

        Returns:
            Scores and columns of N x M candidates (M = 2k + k * (C + 2)), dealt to the banks
            in turn; duplicates and forbidden ones (eos before the constraints are met) score
            -inf and come last.
        """
        n, k = cand.shape[0], self.k
        vocab = cand.shape[1] // k
        met, progress, eos = self.met, self.progress, self.eos_id
        complete = met.all(2)  # N x k
        # Each beam's proposals: its best piece, eos, the next piece of each unmet constraint.
        width = self.phrases.shape[2]
        upcoming = self.phrases.unsqueeze(1).expand(-1, k, -1, -1)  # N x k x C x L
        upcoming = upcoming.gather(3, progress.clamp(max=width - 1).unsqueeze(3)).squeeze(3)
        best_score, best = cand.view(n, k, vocab).max(2, keepdim=True)  # N x k x 1
        proposed = torch.cat([best, torch.full_like(best, eos), upcoming.masked_fill(met, eos)], 2)
        beams = torch.arange(k, device=cand.device).view(1, k, 1)
        columns = torch.cat([top_idx, (beams * vocab + proposed).view(n, -1)], 1)  # N x M
        scores = cand.gather(1, columns)
        parents, tokens = columns // vocab, columns % vocab

        # Forbidden: a repeated column, eos of a hypothesis that has not met every constraint
        # (unless the length limit ends it and its sentence has no complete hypothesis, live
        # or finished).
        ok = ~_repeated(columns)
        live = best_score.squeeze(2) > float("-inf")  # N x k: the beam exists
        eos_anyway = forced & ~self.finished & ~(complete & live).any(1)  # N
        eos_ok = complete.gather(1, parents) | eos_anyway.unsqueeze(1)
        ok &= (tokens != eos) | eos_ok
        proposal_ok = torch.cat([torch.ones_like(complete).unsqueeze(2).expand(-1, -1, 2), ~met], 2)
        ok[:, 2 * k :] &= proposal_ok.view(n, -1)  # the next piece of a met one is no proposal
        scores = scores.masked_fill(~ok, float("-inf"))

        new_met, new_progress = self._after(parents, tokens)  # N x M x C
        bank = (new_met * self.lengths.unsqueeze(1)).sum(2) + new_progress.amax(2)  # N x M
        order = _deal(scores, bank, self.top_bank)
        scores, columns = scores.gather(1, order), columns.gather(1, order)
        self._next_met = new_met.gather(1, order.unsqueeze(2).expand_as(new_met))
        self._next_progress = new_progress.gather(1, order.unsqueeze(2).expand_as(new_progress))
        # The search finishes the eos candidates among the first k; note complete ones.
        done = (columns[:, :k] % vocab == eos) & (scores[:, :k] > float("-inf"))
        self.finished |= (done & self._next_met[:, :k].all(2)).any(1)
        return scores, columns

    def advance(self, live: Tensor, keep: Tensor | None) -> None:
        """Follow the search's choice: the candidates `live` (N x k positions in `rank`'s
        order) become the beams, and only the sentences `keep` (N' indices, None = all) go on.
        """
        index = live.unsqueeze(2).expand(-1, -1, self.met.shape[2])  # N x k x C
        self.met = self._next_met.gather(1, index)
        self.progress = self._next_progress.gather(1, index)
        if keep is not None:
            self.met, self.progress = self.met[keep], self.progress[keep]
            self.phrases, self.lengths = self.phrases[keep], self.lengths[keep]
            self.fallback, self.finished = self.fallback[keep], self.finished[keep]

    def _after(self, parents: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Constraint state after each candidate: N x M x C met and progress.

        Args:
            parents: N x M, the beam each candidate extends.
            tokens: N x M, the token it adds.
        """
        n, m = parents.shape
        n_cons, width = self.phrases.shape[1:]
        index = parents.unsqueeze(2).expand(n, m, n_cons)
        met, progress = self.met.gather(1, index), self.progress.gather(1, index)  # N x M x C
        # Piece j can come next if the first j pieces end the hypothesis (fallback table).
        fallback = self.fallback.unsqueeze(1).expand(n, m, -1, -1, -1)  # N x M x C x L+1 x L
        where = progress.view(n, m, n_cons, 1, 1).expand(-1, -1, -1, 1, width)
        can_follow = fallback.gather(3, where).squeeze(3)  # N x M x C x L
        matches = self.phrases.unsqueeze(1) == tokens.view(n, m, 1, 1)  # N x M x C x L
        steps = torch.arange(1, width + 1, device=tokens.device)
        progress = ((matches & can_follow) * steps).amax(3)  # N x M x C
        met = met | (progress == self.lengths.unsqueeze(1))
        return met, progress.masked_fill(met, 0)


def _fallback_table(phrases: Tensor) -> Tensor:
    """B x C x (L + 1) x L: entry [b, c, p, j] says whether, with p pieces of phrase (b, c)
    matched, its piece j may come next: its first j pieces are a suffix of its first p.
    (j = p continues the match; smaller j restart inside it, as in KMP.)"""
    width = phrases.shape[2]
    table = torch.zeros(*phrases.shape[:2], width + 1, width, dtype=torch.bool)
    for p in range(width + 1):
        for j in range(min(p, width - 1) + 1):
            # phrase[:j] == phrase[p - j : p], for every phrase at once
            table[:, :, p, j] = (phrases[:, :, :j] == phrases[:, :, p - j : p]).all(2)
    return table & (phrases >= 0).unsqueeze(2)


def _repeated(columns: Tensor) -> Tensor:
    """N x M: the column already occurs earlier in its row."""
    ordered, order = columns.sort(dim=1, stable=True)
    again = torch.zeros_like(columns, dtype=torch.bool)
    again[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    return torch.zeros_like(again).scatter(1, order, again)


def _deal(scores: Tensor, bank: Tensor, top_bank: int) -> Tensor:
    """N x M order: the best candidate of every bank (highest bank first), then the second
    best of every bank, and so on; -inf candidates last, in their old order.

    Args:
        scores: N x M candidate scores.
        bank: N x M constraint pieces met, 0..top_bank.
        top_bank: the largest possible bank.
    """
    n, m = scores.shape
    valid = scores > float("-inf")
    column = torch.arange(m, device=scores.device).expand(n, m)
    group = torch.where(valid, bank, -1)  # -inf candidates in a group of their own
    # Candidates by group, best first within it (stable: the earlier of equal scores first).
    by_score = scores.argsort(dim=1, descending=True, stable=True)
    order = by_score.gather(1, group.gather(1, by_score).argsort(dim=1, stable=True))
    grouped = group.gather(1, order)
    starts = torch.ones_like(valid)
    starts[:, 1:] = grouped[:, 1:] != grouped[:, :-1]
    first = torch.where(starts, column, 0).cummax(dim=1).values  # where each one's group starts
    rank = torch.empty_like(column).scatter_(1, order, column - first)  # place in its bank
    key = rank * (top_bank + 1) + (top_bank - bank)
    key = torch.where(valid, key, (m + 1) * (top_bank + 1) + column)
    return key.argsort(dim=1, stable=True)


def unmet(tokens: Sequence[int], phrases: Phrases) -> list[int]:
    """Indices of the phrases that do not occur (contiguously) in `tokens`."""
    text = list(tokens)
    return [
        c
        for c, phrase in enumerate(phrases)
        if not any(
            text[i : i + len(phrase)] == list(phrase) for i in range(len(text) - len(phrase) + 1)
        )
    ]
