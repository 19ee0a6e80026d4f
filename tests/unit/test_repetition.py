"""Repetition guards against fake step functions (see test_search.py): blocked n-grams and the
GNMT coverage penalty, in greedy and beam search."""

from __future__ import annotations

import pytest
import torch
from test_search import (
    BOS,
    EOS,
    SRC_LEN,
    FakeModel,
    assert_same,
    exhaustive,
    lengths,
    random_dist,
)
from torch import Tensor

from nmt_cli.repetition import block_repeats, coverage_bonus, guarded, remove_coverage_bonus
from nmt_cli.search import beam_search, greedy_search, length_penalty


def all_real(batch: int) -> Tensor:
    return torch.ones(batch, SRC_LEN, dtype=torch.bool)


def has_repeat(tokens: list[int], n: int) -> bool:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


@pytest.mark.parametrize(
    ("history", "n", "banned"),
    [
        ([1, 5, 6, 5], 2, {6}),  # "5 6" was seen and the row ends in 5
        ([1, 5, 6, 5], 1, {1, 5, 6}),
        ([1, 5, 6, 5], 3, set()),  # no 3-gram starts with "6 5"
        ([1, 5, 6, 5, 6], 3, {5}),  # "5 6 5" was seen
        ([1, 5], 3, set()),  # no whole 3-gram yet
    ],
)
def test_block_repeats_bans_exactly_the_tokens_that_repeat(
    history: list[int], n: int, banned: set[int]
) -> None:
    log_probs = torch.zeros(2, 8)
    # Row 1 has a different history: the ban is per row.
    block_repeats(log_probs, torch.tensor([history, [7] * len(history)]), n)
    assert {i for i in range(8) if log_probs[0, i] == float("-inf")} == banned
    # "7 7 ... 7": every whole n-gram is seen, so 7 is banned once there is one.
    expected = {7} if len(history) >= n else set()
    assert {i for i in range(8) if log_probs[1, i] == float("-inf")} == expected


@pytest.mark.parametrize("beam", [1, 3])
def test_no_repeat_ngram_outputs_never_repeat_one(beam: int) -> None:
    # Four tokens and long outputs: without the guard most outputs repeat a bigram.
    model = FakeModel(random_dist(4, seed=11, eos_shift=-4.0))
    sents, max_lens = list(range(6)), lengths([12] * 6)
    plain = beam_search(model, model.start(sents), 6, beam, BOS, EOS, max_lens, 1.0, beam)
    assert any(has_repeat(h.tokens, 2) for hyps in plain for h in hyps)
    step, state = guarded(model, model.start(sents), all_real(6), EOS, no_repeat_ngram=2)
    result = beam_search(step, state, 6, beam, BOS, EOS, max_lens, 1.0, beam)
    for sent, hyps in enumerate(result):
        for h in hyps:
            assert not has_repeat([BOS, *h.tokens], 2)
            # Blocking only removes choices: the log-probs are the model's own.
            expected = float(sum(model.dist(sent, (BOS, *h.tokens[:i]))[t] for i, t in
                                 enumerate([*h.tokens, EOS])))  # fmt: skip
            assert h.log_prob == pytest.approx(expected, rel=1e-5)


def test_guards_that_are_off_change_nothing() -> None:
    model = FakeModel(random_dist(6, seed=12, eos_shift=0.5))
    max_lens = lengths([3, 7, 5])
    plain = beam_search(model, model.start([0, 1, 2]), 3, 3, BOS, EOS, max_lens, 1.0, 3)
    step, state = guarded(model, model.start([0, 1, 2]), all_real(3), EOS)
    same = beam_search(step, state, 3, 3, BOS, EOS, max_lens, 1.0, 3)
    for a, b in zip(plain, same, strict=True):
        assert_same(a, b)
    step, state = guarded(model, model.start([0, 1, 2]), all_real(3), EOS)
    greedy = greedy_search(step, state, 3, BOS, EOS, max_lens)
    assert_same(greedy, greedy_search(model, model.start([0, 1, 2]), 3, BOS, EOS, max_lens))


@pytest.mark.parametrize("beta", [0.2, 2.0])
def test_coverage_penalty_ranks_like_gnmt(beta: float) -> None:
    # A beam wider than all 341 sequences finishes every one: the ranking must be GNMT's
    # log_prob / lp + beta * sum_j log(min(coverage_j, 1)), over the model's attention.
    model = FakeModel(random_dist(5, seed=13))
    alpha = 1.0
    step, state = guarded(model, model.start([0]), all_real(1), EOS, coverage_penalty=beta,
                          alpha=alpha)  # fmt: skip
    result = beam_search(step, state, 1, 400, BOS, EOS, lengths([4]), alpha, 10)
    remove_coverage_bonus(result, [SRC_LEN], beta, alpha)

    def gnmt(tokens: list[int], log_prob: float) -> float:
        rows = [model.attention(0, (BOS, *tokens[:i])) for i in range(len(tokens) + 1)]
        coverage = torch.stack(rows).sum(dim=0, keepdim=True)
        bonus = float(coverage_bonus(coverage, all_real(1), beta)[0])
        return log_prob / length_penalty(len(tokens) + 1, alpha) + bonus

    everything = exhaustive(model, 0, 4, alpha=0.0)  # (log_prob, log_prob, tokens)
    expected = sorted(((gnmt(t, lp), lp, t) for _, lp, t in everything), key=lambda e: -e[0])
    assert [h.tokens for h in result[0]] == [t for _, _, t in expected[:10]]
    assert [h.score for h in result[0]] == pytest.approx([s for s, _, _ in expected[:10]])
    assert [h.log_prob for h in result[0]] == pytest.approx([lp for _, lp, _ in expected[:10]])
    # The penalty mattered: plain length-normalized ranking has another order.
    plain = exhaustive(model, 0, 4, alpha=alpha)
    assert [t for _, _, t in plain[:10]] != [h.tokens for h in result[0]]


def test_coverage_ignores_padding() -> None:
    coverage = torch.tensor([[0.5, 2.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    assert float(coverage_bonus(coverage, mask, 1.0)[0]) == pytest.approx(
        torch.log(torch.tensor(0.5)).item()
    )
