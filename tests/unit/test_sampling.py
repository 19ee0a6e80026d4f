"""Sampling against fake step functions with known probabilities (see test_search.py)."""

from __future__ import annotations

import pytest
import torch
from test_search import BOS, EOS, FakeModel, lengths, path_log_probs, random_dist, table_dist

from nmt_cli.errors import ConfigError
from nmt_cli.sampling import Sampling, filter_logits, sample_search
from nmt_cli.search import greedy_search, length_penalty

# First-token probabilities: a = 0 (0.5), b = 3 (0.3), c = 4 (0.17), eos = 2 and 1 (rest).
FIRST = [0.5, 0.01, 0.02, 0.3, 0.17]
TABLE = {(BOS,): FIRST}
THEN_EOS = [0.01, 0.01, 0.96, 0.01, 0.01]


def first_tokens(sampling: Sampling, n: int = 300) -> list[int]:
    model = FakeModel(table_dist(TABLE, default=THEN_EOS), with_attention=False)
    (hyps,) = sample_search(model, model.start([0]), 1, BOS, EOS, lengths([3]), sampling, n)
    return [h.tokens[0] if h.tokens else EOS for h in hyps]


def test_top_k_one_is_greedy() -> None:
    model = FakeModel(random_dist(7, seed=21, eos_shift=1.0))
    max_lens = lengths([0, 2, 5, 9])
    greedy = greedy_search(model, model.start([0, 1, 2, 3]), 4, BOS, EOS, max_lens)
    sampled = sample_search(model, model.start([0, 1, 2, 3]), 4, BOS, EOS, max_lens,
                            Sampling(top_k=1, seed=5), n=3, alpha=0.0)  # fmt: skip
    for g, hyps in zip(greedy, sampled, strict=True):
        assert [h.tokens for h in hyps] == [g.tokens] * 3
        assert [h.log_prob for h in hyps] == pytest.approx([g.log_prob] * 3)
        assert hyps[0].attention is not None and torch.equal(hyps[0].attention, g.attention)


def test_top_k_keeps_exactly_k_tokens_when_scores_tie() -> None:
    # Rounded scores tie often; top-k 1 must still be the argmax (the first of the maxima).
    logits = torch.tensor([[0.5, 1.0, 1.0, 0.2, 1.0], [3.0, 1.0, 3.0, 3.0, 2.0]])
    one = filter_logits(logits, Sampling(top_k=1))
    assert torch.isfinite(one).nonzero().tolist() == [[0, 1], [1, 0]]
    two = filter_logits(logits, Sampling(top_k=2))
    assert torch.isfinite(two).sum(dim=1).tolist() == [2, 2]
    assert torch.equal(two[torch.isfinite(two)], torch.tensor([1.0, 1.0, 3.0, 3.0]))


def test_the_same_seed_gives_the_same_samples() -> None:
    model = FakeModel(random_dist(6, seed=22, eos_shift=-1.0))

    def draw(seed: int) -> list[list[list[int]]]:
        out = sample_search(model, model.start([0, 1]), 2, BOS, EOS, lengths([8, 8]),
                            Sampling(temperature=1.5, seed=seed), n=4)  # fmt: skip
        return [[h.tokens for h in hyps] for hyps in out]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


@pytest.mark.parametrize(
    ("sampling", "allowed"),
    [
        (Sampling(top_k=2), {0, 3}),
        (Sampling(top_p=0.75), {0, 3}),  # 0.5 + 0.3 reach 0.75: c is cut
        (Sampling(top_p=0.5), {0}),
        (Sampling(top_k=3, top_p=0.9), {0, 3, 4}),
    ],
)
def test_samples_only_allowed_tokens(sampling: Sampling, allowed: set[int]) -> None:
    drawn = first_tokens(Sampling(sampling.top_k, sampling.top_p, seed=3))
    assert set(drawn) == allowed  # every allowed token is drawn in 300 tries, none other


def test_unlimited_sampling_follows_the_model() -> None:
    drawn = first_tokens(Sampling(seed=4), n=2000)
    share = drawn.count(0) / len(drawn)
    assert share == pytest.approx(0.5, abs=0.05)
    assert 1 in drawn or EOS in drawn or 4 in drawn  # the tail is reachable


def test_temperature_reshapes_the_distribution() -> None:
    log_p = torch.tensor([FIRST]).log()
    hot = filter_logits(log_p, Sampling(temperature=2.0)).softmax(dim=1)
    expected = torch.tensor([FIRST]).sqrt()
    torch.testing.assert_close(hot, expected / expected.sum())


def test_samples_are_scored_sorted_and_bounded() -> None:
    model = FakeModel(random_dist(6, seed=23, eos_shift=-0.5))
    result = sample_search(model, model.start([0, 1]), 2, BOS, EOS, lengths([4, 6]),
                           Sampling(seed=7), n=5, alpha=1.0)  # fmt: skip
    for sent, (hyps, max_len) in enumerate(zip(result, [4, 6], strict=True)):
        assert len(hyps) == 5
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            assert len(h.tokens) <= max_len and EOS not in h.tokens
            assert h.log_prob == pytest.approx(sum(path_log_probs(model, sent, h)), rel=1e-5)
            assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.tokens) + 1, 1.0))


@pytest.mark.parametrize("bad", [{"top_k": -1}, {"top_p": 0.0}, {"temperature": 0.0}])
def test_rejects_bad_options(bad: dict) -> None:
    with pytest.raises(ConfigError):
        Sampling(**bad)
