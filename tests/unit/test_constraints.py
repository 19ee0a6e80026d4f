"""Lexically constrained beam search against fake step functions (test_search's), no model.

The oracle is exhaustive search: a beam wide enough to keep every prefix must return exactly
the sequences that contain every phrase, best first, and nothing else.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_search import (
    BOS,
    EOS,
    FakeModel,
    assert_same,
    devices,
    exhaustive,
    lengths,
    path_log_probs,
    random_dist,
    table_dist,
)

from nmt_cli.constraints import LexicalConstraints, Phrases, unmet
from nmt_cli.search import beam_search


def constrained(
    model: FakeModel,
    phrases: list[Phrases],
    max_lens: list[int],
    beam: int,
    n_best: int = 1,
    alpha: float = 1.0,
    device: str = "cpu",
) -> list[list]:
    guide = LexicalConstraints(phrases, beam, EOS, torch.device(device))
    sents = list(range(len(phrases)))
    return beam_search(
        model,
        model.start(sents),
        len(sents),
        beam,
        BOS,
        EOS,
        lengths(max_lens, device),
        alpha,
        n_best,
        guide=guide,
    )


@pytest.mark.parametrize(
    "phrases",
    [
        [[3]],
        [[0, 0, 3]],  # "0 0 0 3" contains it: a mismatch falls back inside the phrase (KMP)
        [[1], [0, 3]],  # two phrases, met in either order
        [[3, 0, 3]],
    ],
)
def test_wide_beam_equals_exhaustive_search_over_the_sequences_with_every_phrase(
    phrases: Phrases,
) -> None:
    # V = 4 (eos = 2), max length 4: 121 sequences, so a beam of 128 keeps every prefix and
    # every finished sequence, and never stops early.
    model = FakeModel(random_dist(4, seed=11))
    (hyps,) = constrained(model, [phrases], [4], beam=128, n_best=128)
    expected = [f for f in exhaustive(model, 0, 4, alpha=1.0) if not unmet(f[2], phrases)]
    assert expected, "the scenario needs sequences that meet the constraints"
    assert [h.tokens for h in hyps] == [tokens for _, _, tokens in expected]
    assert [h.score for h in hyps] == pytest.approx([s for s, _, _ in expected], rel=1e-5)


@pytest.mark.parametrize("device", devices())
def test_every_phrase_appears_in_every_output(device: str) -> None:
    model = FakeModel(random_dist(9, seed=12, eos_shift=1.5), device=device)
    phrases: list[Phrases] = [
        [[4]],
        [[5, 6], [7]],
        [[3, 3, 4]],
        [[8, 0], [0, 8]],  # overlapping phrases: "8 0 8" meets both
        [[6], [4, 5, 6]],
    ]
    result = constrained(model, phrases, [10] * 5, beam=5, n_best=3, device=device)
    for sent, (mine, hyps) in enumerate(zip(phrases, result, strict=True)):
        assert hyps
        for h in hyps:
            assert unmet(h.tokens, mine) == []
            assert h.log_prob == pytest.approx(sum(path_log_probs(model, sent, h)), rel=1e-5)
            assert h.score == pytest.approx(h.log_prob / ((5 + len(h.tokens) + 1) / 6))
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
    # Batched equals sentence by sentence: each sentence's constraint state follows its rows.
    for sent, mine in enumerate(phrases):
        single = FakeModel(model.dist, device=device)
        guide = LexicalConstraints([mine], 5, EOS, torch.device(device))
        state = single.start([sent])
        alone = beam_search(single, state, 1, 5, BOS, EOS, lengths([10], device), 1.0, 3, guide)
        assert_same(result[sent], alone[0])


def test_eos_waits_until_the_phrase_is_met() -> None:
    # a = 0, c = 3. The model ends after "a" (0.6 * 0.9) and rates c low everywhere; the best
    # sequence with c is "a c" (0.6 * 0.05 * 0.9), which greedy or plain beam search never finds.
    table = {
        (BOS,): [0.6, 0.01, 0.33, 0.02, 0.04],
        (BOS, 0): [0.02, 0.01, 0.9, 0.05, 0.02],
        (BOS, 0, 3): [0.04, 0.01, 0.9, 0.01, 0.04],
    }
    model = FakeModel(table_dist(table, default=[0.2, 0.01, 0.4, 0.19, 0.2]))
    ((plain,),) = beam_search(model, model.start([0]), 1, 3, BOS, EOS, lengths([6]), alpha=0.0)
    assert plain.tokens == [0]
    ((hyp,),) = constrained(model, [[[3]]], [6], beam=3, alpha=0.0)
    assert hyp.tokens == [0, 3]
    assert hyp.log_prob == pytest.approx(math.log(0.6 * 0.05 * 0.9))


def test_a_phrase_of_several_pieces_is_met_only_in_order_and_contiguously() -> None:
    # Phrase "3 4". The model likes "3 0 4" and "4 3" (each piece, wrong order or a gap);
    # the constrained output must hold "3 4" together.
    table = {
        (BOS,): [0.05, 0.01, 0.04, 0.6, 0.3],
        (BOS, 3): [0.8, 0.01, 0.05, 0.04, 0.1],
        (BOS, 3, 0): [0.02, 0.01, 0.02, 0.05, 0.9],
        (BOS, 4): [0.04, 0.01, 0.05, 0.85, 0.05],
        (BOS, 3, 4): [0.1, 0.01, 0.85, 0.02, 0.02],
    }
    model = FakeModel(table_dist(table, default=[0.01, 0.01, 0.96, 0.01, 0.01]))
    ((plain,),) = beam_search(model, model.start([0]), 1, 2, BOS, EOS, lengths([5]), alpha=0.0)
    assert plain.tokens in ([3, 0, 4], [4, 3])
    ((hyp,),) = constrained(model, [[[3, 4]]], [5], beam=2, alpha=0.0)
    assert hyp.tokens == [3, 4]


def test_a_phrase_too_long_for_the_length_limit_still_gives_one_output() -> None:
    model = FakeModel(random_dist(6, seed=13))
    hyps = constrained(model, [[[3, 4, 5]], [[3]]], [2, 4], beam=3, n_best=2)
    assert len(hyps[0]) >= 1 and len(hyps[0][0].tokens) == 2  # forced to end at the limit
    assert unmet(hyps[0][0].tokens, [[3, 4, 5]]) == [0]
    assert math.isfinite(hyps[0][0].score)
    assert all(unmet(h.tokens, [[3]]) == [] for h in hyps[1])  # its neighbour is unharmed


def test_at_the_length_limit_a_hypothesis_with_the_phrase_beats_better_ones_without() -> None:
    # Phrase "4", at most 2 tokens. "0 0" (0.7 * 0.9) is far likelier than any sequence with 4;
    # every sequence ends at the limit, so "0 0" finishes beside them, and must still lose.
    table = {
        (BOS,): [0.7, 0.05, 0.01, 0.04, 0.2],
        (BOS, 0): [0.9, 0.02, 0.01, 0.02, 0.05],
        (BOS, 4): [0.1, 0.1, 0.01, 0.09, 0.7],
    }
    model = FakeModel(table_dist(table, default=[0.01, 0.01, 0.96, 0.01, 0.01]))
    ((plain,),) = beam_search(model, model.start([0]), 1, 3, BOS, EOS, lengths([2]), alpha=0.0)
    assert plain.tokens == [0, 0]
    (hyps,) = constrained(model, [[[4]]], [2], beam=3, n_best=3, alpha=0.0)
    # The beam held "4 4", "0 0" and "0 4" (a slot per bank in turn); "0 0" may not finish.
    assert [h.tokens for h in hyps] == [[4, 4], [0, 4]]


def test_one_beam_still_meets_the_phrase() -> None:
    model = FakeModel(random_dist(7, seed=14, eos_shift=2.0))
    hyps = constrained(model, [[[5, 6]], [[4]]], [8, 8], beam=1)
    assert [unmet(h[0].tokens, p) for h, p in zip(hyps, [[[5, 6]], [[4]]], strict=True)] == [
        [],
        [],
    ]


@pytest.mark.parametrize("device", devices())
def test_sentences_without_phrases_decode_exactly_as_without_a_guide(device: str) -> None:
    model = FakeModel(random_dist(8, seed=15, eos_shift=0.5), device=device)
    max_lens = [5, 7, 6, 4]
    plain = beam_search(
        model, model.start([0, 1, 2, 3]), 4, 4, BOS, EOS, lengths(max_lens, device), 1.0, 4
    )
    none = constrained(model, [[], [], [], []], max_lens, beam=4, n_best=4, device=device)
    mixed = constrained(model, [[], [[5]], [], [[6, 7]]], max_lens, beam=4, n_best=4, device=device)
    for sent in range(4):
        assert_same(none[sent], plain[sent])
    assert_same(mixed[0], plain[0])
    assert_same(mixed[2], plain[2])
    assert unmet(mixed[1][0].tokens, [[5]]) == unmet(mixed[3][0].tokens, [[6, 7]]) == []


def test_rejects_empty_phrases_and_phrases_with_eos() -> None:
    with pytest.raises(ValueError, match="constraint"):
        LexicalConstraints([[[]]], 2, EOS, torch.device("cpu"))
    with pytest.raises(ValueError, match="constraint"):
        LexicalConstraints([[[3, EOS]]], 2, EOS, torch.device("cpu"))


@pytest.mark.parametrize(
    ("tokens", "phrases", "expected"),
    [
        ([1, 2, 3], [[2, 3], [1], [3, 2]], [2]),
        ([5, 5, 5, 6], [[5, 5, 6]], []),
        ([], [[1]], [0]),
        ([1, 2], [], []),
    ],
)
def test_unmet_names_the_missing_phrases(
    tokens: list[int], phrases: list[list[int]], expected: list[int]
) -> None:
    assert unmet(tokens, phrases) == expected
