"""Search against fake step functions whose probabilities we know (no model needed).

The fake model's next-token distribution depends on the sentence and the whole prefix, and its
state carries both per row, so a search that feeds a row the wrong state or forgets to reorder
it gets different probabilities and fails the comparisons below.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from nmt_cli.search import Hypothesis, beam_search, greedy_search, length_penalty, top_k

BOS, EOS = 1, 2  # eos is not 0 on purpose
SRC_LEN = 3

Dist = Callable[[int, tuple[int, ...]], Tensor]  # (sentence, prefix with bos) -> log-probs V


@dataclass(frozen=True)
class FakeState:
    """Per row: the sentence (selects its table) and the tokens fed so far, bos first; per
    source row: its sentence, shared by len(sents) / len(sources) consecutive rows."""

    sents: tuple[int, ...]
    prefixes: tuple[tuple[int, ...], ...]
    sources: tuple[int, ...]

    def index_select(self, rows: Tensor, sources: Tensor | None = None) -> FakeState:
        kept = self.sources if sources is None else tuple(self.sources[i] for i in sources.tolist())
        new = FakeState(
            tuple(self.sents[i] for i in rows.tolist()),
            tuple(self.prefixes[i] for i in rows.tolist()),
            kept,
        )
        new.check_sources()  # the search's promise: each row stays with its source row
        return new

    def check_sources(self) -> None:
        assert len(self.sents) % len(self.sources) == 0, "rows must split evenly by source"
        group = len(self.sents) // len(self.sources)
        assert self.sents == tuple(self.sources[i // group] for i in range(len(self.sents)))


class FakeModel:
    """A step function over a distribution table; it records the rows of every call."""

    def __init__(self, dist: Dist, with_attention: bool = True, device: str = "cpu") -> None:
        self.dist = dist
        self.with_attention = with_attention
        self.device = device
        self.rows: list[int] = []

    def start(self, sents: list[int]) -> FakeState:
        return FakeState(tuple(sents), ((),) * len(sents), tuple(sents))

    def attention(self, sent: int, prefix: tuple[int, ...]) -> Tensor:
        """S attention weights for the step that consumed the last token of `prefix`."""
        gen = torch.Generator().manual_seed(zlib.crc32(repr(("att", sent, prefix)).encode()))
        return torch.softmax(torch.randn(SRC_LEN, generator=gen), dim=0)

    def __call__(self, prev: Tensor, state: FakeState) -> tuple[Tensor, FakeState, Tensor | None]:
        assert prev.shape == (len(state.prefixes),), "state rows must match the tokens"
        assert prev.device.type == torch.device(self.device).type
        self.rows.append(prev.numel())
        prefixes = tuple((*p, tok) for p, tok in zip(state.prefixes, prev.tolist(), strict=True))
        rows = list(zip(state.sents, prefixes, strict=True))
        log_probs = torch.stack([self.dist(s, p) for s, p in rows]).to(self.device)
        attn = None
        if self.with_attention:
            attn = torch.stack([self.attention(s, p) for s, p in rows]).to(self.device)
        state.check_sources()
        return log_probs, FakeState(state.sents, prefixes, state.sources), attn


def random_dist(vocab: int, seed: int = 0, eos_shift: float = 0.0) -> Dist:
    """Seeded random log-probs for every (sentence, prefix); `eos_shift` moves eos's logit."""
    cache: dict[tuple[int, tuple[int, ...]], Tensor] = {}

    def dist(sent: int, prefix: tuple[int, ...]) -> Tensor:
        if (sent, prefix) not in cache:
            gen = torch.Generator().manual_seed(zlib.crc32(repr((seed, sent, prefix)).encode()))
            logits = 2.0 * torch.randn(vocab, generator=gen)
            logits[EOS] += eos_shift
            cache[sent, prefix] = torch.log_softmax(logits, dim=0)
        return cache[sent, prefix]

    return dist


def table_dist(table: dict[tuple[int, ...], list[float]], default: list[float]) -> Dist:
    """Hand-written probabilities keyed on the prefix (the same for every sentence)."""
    return lambda sent, prefix: torch.tensor(table.get(prefix, default)).log()


def path_log_probs(model: FakeModel, sent: int, hyp: Hypothesis) -> list[float]:
    """The model's log-prob of each token of `hyp`, eos included."""
    prefix, out = (BOS,), []
    for tok in [*hyp.tokens, EOS]:
        out.append(float(model.dist(sent, prefix)[tok]))
        prefix += (tok,)
    return out


def exhaustive(
    model: FakeModel, sent: int, max_len: int, alpha: float
) -> list[tuple[float, float, list[int]]]:
    """Every sequence ending in eos (forced at `max_len`): (score, log_prob, tokens), best first."""
    vocab = model.dist(sent, (BOS,)).numel()
    found = []

    def visit(prefix: tuple[int, ...], log_prob: float) -> None:
        log_probs = model.dist(sent, prefix).tolist()
        tokens = list(prefix[1:])
        end = log_prob + log_probs[EOS]
        found.append((end / length_penalty(len(tokens) + 1, alpha), end, tokens))
        if len(tokens) < max_len:
            for tok in range(vocab):
                if tok != EOS:
                    visit((*prefix, tok), log_prob + log_probs[tok])

    visit((BOS,), 0.0)
    return sorted(found, key=lambda f: -f[0])


def assert_same(a: list[Hypothesis], b: list[Hypothesis]) -> None:
    """Exact equality, attention included (dataclass == cannot compare tensors)."""
    assert [(h.tokens, h.score, h.log_prob) for h in a] == [
        (h.tokens, h.score, h.log_prob) for h in b
    ]
    for ha, hb in zip(a, b, strict=True):
        assert ha.attention is not None and hb.attention is not None
        assert torch.equal(ha.attention, hb.attention)


def lengths(values: list[int], device: str = "cpu") -> Tensor:
    return torch.tensor(values, dtype=torch.long, device=device)


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


@pytest.mark.parametrize(
    ("length", "alpha", "expected"),
    [(1, 1.0, 1.0), (7, 1.0, 2.0), (13, 0.5, math.sqrt(3.0)), (10, 0.0, 1.0), (19, 2.0, 16.0)],
)
def test_length_penalty(length: int, alpha: float, expected: float) -> None:
    assert length_penalty(length, alpha) == pytest.approx(expected)


def test_length_penalty_tensor() -> None:
    out = length_penalty(torch.tensor([1, 7, 13]), 2.0)
    torch.testing.assert_close(out, torch.tensor([1.0, 4.0, 9.0]))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_equals_exhaustive_search(alpha: float) -> None:
    # V = 5, max length 4: at most 320 finite candidates per step and 341 sequences, so a beam
    # of 400 keeps every prefix, finishes every sequence and never stops early.
    model = FakeModel(random_dist(5, seed=1))
    max_lens = [4, 2]
    result = beam_search(model, model.start([0, 1]), 2, 400, BOS, EOS, lengths(max_lens), alpha, 10)
    for sent, (hyps, max_len) in enumerate(zip(result, max_lens, strict=True)):
        expected = exhaustive(model, sent, max_len, alpha)[:10]
        assert [h.tokens for h in hyps] == [tokens for _, _, tokens in expected]
        assert [h.score for h in hyps] == pytest.approx([s for s, _, _ in expected], rel=1e-5)
        assert [h.log_prob for h in hyps] == pytest.approx([lp for _, lp, _ in expected], rel=1e-5)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_one_equals_greedy(alpha: float, device: str) -> None:
    max_lens = [0, 1, 3, 6, 10]
    greedy_model = FakeModel(random_dist(7, seed=2, eos_shift=1.0), device=device)
    beam_model = FakeModel(greedy_model.dist, device=device)
    state = greedy_model.start([0, 1, 2, 3, 4])
    greedy = greedy_search(greedy_model, state, 5, BOS, EOS, lengths(max_lens, device))
    beam = beam_search(beam_model, state, 5, 1, BOS, EOS, lengths(max_lens, device), alpha)
    assert all(len(hyps) == 1 for hyps in beam)
    assert [h.tokens for h in greedy] == [hyps[0].tokens for hyps in beam]
    assert [h.log_prob for h in greedy] == [hyps[0].log_prob for hyps in beam]
    for g, (b,) in zip(greedy, beam, strict=True):
        assert g.attention is not None and b.attention is not None
        assert g.attention.device.type == "cpu"
        assert torch.equal(g.attention, b.attention)
    assert greedy_model.rows == beam_model.rows  # both drop sentences at the same steps
    # Some sentences end by choice and some at their max length: both paths are exercised.
    assert any(len(h.tokens) < m for h, m in zip(greedy, max_lens, strict=True))
    assert any(len(h.tokens) == m > 0 for h, m in zip(greedy, max_lens, strict=True))


def test_greedy_follows_the_model() -> None:
    model = FakeModel(random_dist(6, seed=3, eos_shift=0.5))
    (hyp,) = greedy_search(model, model.start([0]), 1, BOS, EOS, lengths([8]))
    prefix = (BOS,)
    for tok in [*hyp.tokens, EOS]:
        log_probs = model.dist(0, prefix)
        if len(prefix) <= 8:
            assert tok == int(log_probs.argmax())
        prefix += (tok,)
    assert hyp.log_prob == pytest.approx(sum(path_log_probs(model, 0, hyp)), rel=1e-6)
    assert hyp.score == hyp.log_prob


@pytest.mark.parametrize("device", devices())
def test_batched_equals_sentence_by_sentence(device: str) -> None:
    model = FakeModel(random_dist(6, seed=4, eos_shift=0.5), device=device)
    max_lens = [2, 5, 7, 4]
    batched = beam_search(
        model, model.start([0, 1, 2, 3]), 4, 3, BOS, EOS, lengths(max_lens, device), 1.0, 3
    )
    batched_greedy = greedy_search(
        model, model.start([0, 1, 2, 3]), 4, BOS, EOS, lengths(max_lens, device)
    )
    for sent, max_len in enumerate(max_lens):
        single = beam_search(
            model, model.start([sent]), 1, 3, BOS, EOS, lengths([max_len], device), 1.0, 3
        )
        assert_same(batched[sent], single[0])
        single_greedy = greedy_search(
            model, model.start([sent]), 1, BOS, EOS, lengths([max_len], device)
        )
        assert_same([batched_greedy[sent]], single_greedy)
    # The tables differ per sentence, so the outputs do too: index_select really mattered.
    assert len({tuple(hyps[0].tokens) for hyps in batched}) > 1


def test_beam_beats_greedy() -> None:
    # a = 0, b = 3. Greedy takes a (0.55), then eos (0.40): 0.22. Beam finds b eos: 0.36.
    table = {
        (BOS,): [0.55, 0.01, 0.04, 0.40],
        (BOS, 0): [0.30, 0.01, 0.40, 0.29],
        (BOS, 3): [0.05, 0.01, 0.90, 0.04],
    }
    dist = table_dist(table, default=[0.01, 0.01, 0.97, 0.01])
    model = FakeModel(dist, with_attention=False)
    (greedy,) = greedy_search(model, model.start([0]), 1, BOS, EOS, lengths([10]))
    assert greedy.tokens == [0]
    assert greedy.log_prob == pytest.approx(math.log(0.22))
    assert greedy.attention is None

    model.rows.clear()
    ((beam,),) = beam_search(model, model.start([0]), 1, 2, BOS, EOS, lengths([10]), alpha=0.0)
    assert beam.tokens == [3]
    assert beam.log_prob == pytest.approx(math.log(0.36))
    assert beam.score == beam.log_prob
    # One row at the first step (both beams would hold BOS). Step 1 finishes "b eos" (0.36) and
    # "a eos"; the best live one (b c: 0.324) cannot beat 0.36.
    assert model.rows == [1, 2]


def test_search_goes_on_while_a_live_hypothesis_can_still_win() -> None:
    # Step 1 finishes "a" (0.2625); step 2 finishes "b c" (0.284), the beam's second, while
    # "b c a" (0.341) is live. Stopping at k finished would miss "b c a eos" (0.324), the best.
    table = {
        (BOS,): [0.35, 0.004, 0.004, 0.638, 0.004],
        (BOS, 0): [0.07, 0.06, 0.75, 0.065, 0.055],
        (BOS, 3): [0.0025, 0.0025, 0.0025, 0.0025, 0.99],
        (BOS, 3, 4): [0.54, 0.0025, 0.45, 0.0025, 0.005],
        (BOS, 3, 4, 0): [0.0125, 0.0125, 0.95, 0.0125, 0.0125],
    }
    model = FakeModel(table_dist(table, default=[0.01, 0.01, 0.96, 0.01, 0.01]))
    ((best, second),) = beam_search(
        model, model.start([0]), 1, 2, BOS, EOS, lengths([4]), alpha=0.0, n_best=2
    )
    assert (best.tokens, second.tokens) == ([3, 4, 0], [3, 4])
    assert best.log_prob == pytest.approx(math.log(0.638 * 0.99 * 0.54 * 0.95), rel=1e-5)
    assert best.tokens == exhaustive(model, 0, 4, alpha=0.0)[0][2]
    assert model.rows == [1, 2, 2, 2]  # and it stops once nothing live can win


def test_n_best_sorted_distinct_and_scored() -> None:
    model = FakeModel(random_dist(6, seed=5, eos_shift=0.5))
    result = beam_search(model, model.start([0, 1]), 2, 4, BOS, EOS, lengths([6, 5]), 1.0, 4)
    for sent, hyps in enumerate(result):
        assert len(hyps) == 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 4
        for h in hyps:
            assert EOS not in h.tokens
            assert h.log_prob == pytest.approx(sum(path_log_probs(model, sent, h)), rel=1e-5)
            assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.tokens) + 1, 1.0))
            # One attention row per output token and eos, each the model's for that prefix.
            assert h.attention is not None
            prefixes = [(BOS, *h.tokens[:i]) for i in range(len(h.tokens) + 1)]
            expected = torch.stack([model.attention(sent, p) for p in prefixes])
            assert torch.equal(h.attention, expected)


def test_max_length_zero_gives_the_empty_output() -> None:
    model = FakeModel(random_dist(5, seed=6))
    ((hyp,),) = beam_search(model, model.start([0]), 1, 3, BOS, EOS, lengths([0]), 1.0, 3)
    assert hyp.tokens == []
    assert hyp.log_prob == pytest.approx(float(model.dist(0, (BOS,))[EOS]))
    assert hyp.attention is not None and hyp.attention.shape == (1, SRC_LEN)


def test_finished_sentences_leave_the_batch() -> None:
    # eos is never chosen freely, so each sentence ends exactly at its max length.
    model = FakeModel(random_dist(5, seed=7, eos_shift=-30.0))
    max_lens = [6, 1, 3]
    result = beam_search(model, model.start([0, 1, 2]), 3, 2, BOS, EOS, lengths(max_lens))
    assert [len(hyps[0].tokens) for hyps in result] == max_lens
    assert model.rows == [3, 6, 4, 4, 2, 2, 2]  # one row per sentence at the first step

    model.rows.clear()
    greedy = greedy_search(model, model.start([0, 1, 2]), 3, BOS, EOS, lengths(max_lens))
    assert [len(h.tokens) for h in greedy] == max_lens
    assert model.rows == [3, 3, 2, 2, 1, 1, 1]


def test_rejects_bad_arguments() -> None:
    model = FakeModel(random_dist(5))
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, model.start([0]), 1, 2, BOS, EOS, lengths([3]), n_best=3)
    with pytest.raises(ValueError, match="max_lengths"):
        greedy_search(model, model.start([0]), 1, BOS, EOS, lengths([3, 4]))


@pytest.mark.parametrize("vocab", [8000, 40_000, 5 * 8003, 300, 30])
@pytest.mark.parametrize("k", [1, 10])
def test_top_k_in_two_passes_equals_torch_topk(vocab: int, k: int) -> None:
    g = torch.Generator().manual_seed(vocab + k)
    x = torch.randn(7, vocab, generator=g) * 3
    x[1, : vocab // 2] = float("-inf")  # a beam that does not exist yet
    x[2, -3:] += 100  # the best values in the columns after the last whole block
    x[3, :64] += 100  # ... and all in the first block
    values, columns = top_k(x, k)
    want_values, want_columns = x.topk(k, dim=1)
    assert torch.equal(values, want_values) and torch.equal(columns, want_columns)
