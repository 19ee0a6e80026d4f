"""Forced decoding (`nmt score`): scores agree with search, batching changes nothing, and every
pair gets exactly one record in input order, empty ones included."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch

from nmt_cli.config import Config, DecodeConfig, ModelConfig
from nmt_cli.decoding import search_batch
from nmt_cli.ensemble import Ensemble
from nmt_cli.errors import DataError
from nmt_cli.model import Seq2Seq, build_model, init_weights
from nmt_cli.score_stream import (
    NOT_SCORED,
    ScoreStats,
    read_file_pairs,
    read_tab_pairs,
    score_stream,
)
from nmt_cli.scoring import EMPTY_SOURCE, Scorer, score_batch
from nmt_cli.tokenizer import Tokenizer, train_sentencepiece
from nmt_cli.translate import Translator

CPU = torch.device("cpu")
SMALL = ModelConfig(emb_size=16, enc_hidden=24, dec_hidden=24, attn_hidden=12, dropout=0.0)
TEXTS = [f"the {w} number {i} sat on mat {i * 7 % 50}." for i in range(30) for w in ("cat", "dog")]
PAIRS = [
    ("the cat sat", "the dog sat on mat 3."),
    ("", "an empty source"),
    ("the dog number 3 sat on mat 21.", ""),
    ("mat", "mat"),
    ("the cat number 12 sat", "the cat number 12 sat on the mat 12 and the dog too."),
]


def random_model(seed: int, vocab: int = 30) -> Seq2Seq:
    torch.manual_seed(seed)
    model = build_model(SMALL, vocab, vocab, True)
    init_weights(model, 0.5)  # a peaked distribution: beam search has real choices to make
    return model.eval()


def sources(n: int, vocab: int = 30) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [
        torch.randint(4, vocab, (int(torch.randint(1, 9, (1,), generator=g)),), generator=g)
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def translator() -> Translator:
    tok = Tokenizer.from_bytes(train_sentencepiece(TEXTS, 60))
    config = Config(model=SMALL, decode=DecodeConfig(batch_size=2))
    torch.manual_seed(0)
    model = build_model(config.model, tok.vocab_size, tok.vocab_size, True)
    init_weights(model, 0.3)
    return Translator(model, config, tok, tok, CPU)


@pytest.mark.parametrize("ensemble", [False, True], ids=["one model", "ensemble"])
@pytest.mark.parametrize("beam", [1, 4])
def test_a_hypothesis_scores_the_log_prob_search_reported(beam: int, ensemble: bool) -> None:
    model = Ensemble([random_model(1), random_model(2)]) if ensemble else random_model(1)
    srcs = sources(6)
    found = search_batch(
        model, srcs, CPU, beam=beam, alpha=0.0, max_len_a=1.0, max_len_b=5, n_best=beam
    )
    for src, hyps in zip(srcs, found, strict=True):
        targets = [torch.tensor(h.tokens, dtype=torch.long) for h in hyps]
        scores = score_batch(model, [src] * len(hyps), targets, CPU)
        for hyp, token_scores in zip(hyps, scores, strict=True):
            assert len(token_scores) == len(hyp.tokens) + 1  # eos scored too
            assert float(token_scores.sum()) == pytest.approx(hyp.log_prob, abs=1e-4)
            assert hyp.score == pytest.approx(hyp.log_prob)  # alpha 0: no length penalty


def test_a_batch_scores_each_pair_as_it_scores_alone() -> None:
    model = random_model(3)
    srcs, tgts = sources(7), [s.flip(0)[:5] for s in reversed(sources(7))]
    together = score_batch(model, srcs, tgts, CPU)
    for src, tgt, batched in zip(srcs, tgts, together, strict=True):
        (alone,) = score_batch(model, [src], [tgt], CPU)
        torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_scorer_keeps_input_order_and_marks_an_empty_source(translator: Translator) -> None:
    scores = Scorer(translator).score(PAIRS, batch_size=2)
    assert [s.skipped for s in scores] == [None, EMPTY_SOURCE, None, None, None]
    assert scores[1].tokens == 0 and math.isnan(scores[1].average)
    assert scores[2].tokens == 1 and scores[2].pieces == ["</s>"]  # an empty target: eos alone
    for pair, score in zip(PAIRS, scores, strict=True):  # sorted batches, yet each its own
        if score.skipped is None:
            (alone,) = Scorer(translator).score([pair])
            assert score.log_prob == pytest.approx(alone.log_prob, abs=1e-5)
            assert score.pieces[:-1] == translator.tgt_tok.encode_pieces(pair[1])


def run_stream(
    translator: Translator, pairs: list[tuple[str, str]], as_json: bool
) -> tuple[list[str], ScoreStats]:
    out = io.StringIO()
    stats = score_stream(Scorer(translator), iter(pairs), out, as_json, batch_size=2)
    return out.getvalue().splitlines(), stats


def test_text_and_json_records_agree_one_per_pair(translator: Translator) -> None:
    text, stats = run_stream(translator, PAIRS, as_json=False)
    records = [json.loads(line) for line in run_stream(translator, PAIRS, as_json=True)[0]]
    assert len(text) == len(records) == len(PAIRS)
    assert text[1] + "\n" == NOT_SCORED
    assert records[1]["log_prob"] is None and records[1]["skipped"] == EMPTY_SOURCE
    total, tokens = 0.0, 0
    for row, record in zip(text, records, strict=True):
        if record["log_prob"] is None:
            continue
        log_prob, average, count = row.split("\t")
        assert float(log_prob) == pytest.approx(record["log_prob"], abs=1e-4)
        assert float(average) == pytest.approx(record["log_prob"] / int(count), abs=1e-4)
        assert (
            int(count)
            == record["tokens"]
            == len(record["pieces"])
            == len(record["token_log_probs"])
        )
        assert sum(record["token_log_probs"]) == pytest.approx(record["log_prob"], abs=1e-4)
        total, tokens = total + record["log_prob"], tokens + record["tokens"]
    assert (stats.pairs, stats.skipped, stats.tokens) == (5, 1, tokens)
    assert stats.perplexity == pytest.approx(math.exp(-total / tokens), rel=1e-5)


def test_misaligned_files_score_every_whole_pair_then_fail(
    translator: Translator, tmp_path: Path
) -> None:
    src, tgt = tmp_path / "a.src", tmp_path / "a.tgt"
    src.write_text("the cat\nthe dog\nmat\n")
    tgt.write_text("the cat\nthe dog\n")
    out = io.StringIO()
    with src.open("rb") as s, tgt.open("rb") as t, pytest.raises(DataError) as err:
        score_stream(Scorer(translator), read_file_pairs(s, t), out, batch_size=2)
    assert (
        str(err.value)
        == f"{src} has more lines than {tgt} (2); the files must have one line per pair"
    )
    assert len(out.getvalue().splitlines()) == 2


def test_tab_separated_input(tmp_path: Path) -> None:
    raw = io.BytesIO(b"a b\tc d\n\n\tonly target\nsource\t\n")
    assert list(read_tab_pairs(raw)) == [
        ("a b", "c d"),
        ("", ""),
        ("", "only target"),
        ("source", ""),
    ]
    with pytest.raises(DataError, match=r"^stdin:2: no tab; expected SOURCE<TAB>TARGET$"):
        list(read_tab_pairs(io.BytesIO(b"a\tb\nno tab here\n")))
