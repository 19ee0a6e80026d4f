"""Attention alignments: columns follow the source as typed, records and files are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nmt_cli.alignments import (
    alignment_record,
    json_record,
    parse_lines,
    read_alignments,
    to_json_line,
)
from nmt_cli.config import Config, DataConfig, DecodeConfig, ModelConfig
from nmt_cli.decoding import search_batch
from nmt_cli.errors import ConfigError, DataError
from nmt_cli.model import build_model, init_weights
from nmt_cli.model.decoder import DecoderState
from nmt_cli.tokenizer import Tokenizer, train_sentencepiece
from nmt_cli.translate import Translation, Translator, join_parts, split_long

TEXTS = [f"the {w} number {i} sat on mat {i * 7 % 50}, then ran." for i in range(40) for w in (
    "cat", "dog", "bird")]  # fmt: skip
SMALL = ModelConfig(
    emb_size=16, enc_hidden=24, dec_hidden=24, attn_hidden=12, dropout=0.0, emb_dropout=0.0
)
LONG = "the cat number 3 sat on mat 21, then ran. the dog number 9 sat on mat 13, then ran."


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_bytes(train_sentencepiece(TEXTS, 60))


def make_translator(tok: Tokenizer, reverse: bool = False, **decode: int) -> Translator:
    config = Config(
        data=DataConfig(reverse_source=reverse),
        model=SMALL,
        decode=DecodeConfig(beam=1, max_len_b=4, **decode),
    )
    torch.manual_seed(0)  # the same weights whatever `reverse` is
    model = build_model(config.model, tok.vocab_size, tok.vocab_size, True, reverse)
    init_weights(model, 0.3)
    return Translator(model, config, tok, tok, torch.device("cpu"))


def test_reversed_source_columns_are_flipped_back(tok: Tokenizer) -> None:
    """A reverse_source model reads x backwards: the same as a plain twin reading reversed(x)."""
    reverse, plain = make_translator(tok, reverse=True), make_translator(tok)
    ids = tok.encode("the cat number 3 sat on mat")
    ours = reverse.translate_lines(["the cat number 3 sat on mat"])[0][0]
    twin = search_batch(plain.model, [torch.tensor(ids[::-1])], plain.device, 1, 1.0, 1.5, 4)
    assert ours.source == [tok.id_to_piece(i) for i in ids]
    assert twin[0][0].attention is not None and ours.attention is not None
    assert torch.allclose(ours.attention, twin[0][0].attention.flip(1))


@pytest.mark.parametrize("reverse", [False, True])
def test_batch_padding_columns_are_dropped(tok: Tokenizer, reverse: bool) -> None:
    translator = make_translator(tok, reverse=reverse)
    lines = ["the cat sat", "the bird number 12 sat on mat 40, then ran."]
    batched = [hyps[0] for hyps in translator.translate_lines(lines)]
    for line, together in zip(lines, batched, strict=True):
        alone = translator.translate_lines([line])[0][0]
        assert together.attention is not None and alone.attention is not None
        assert together.attention.shape == (len(together.pieces) + 1, len(together.source))
        assert torch.allclose(together.attention, alone.attention, atol=1e-5)
        assert torch.allclose(together.attention.sum(1), torch.ones(len(together.pieces) + 1))


def test_a_pool_of_many_batches_keeps_input_order(tok: Tokenizer) -> None:
    """Lines pooled over several search batches (sorted by length) come back in input order,
    each as it is translated alone; an empty line stays empty."""
    translator = make_translator(tok)
    lines = ["the bird number 12 sat on mat 40, then ran.", "", "the cat sat", "mat", "a b c d"]
    encode, sizes = translator.model.encode, []

    def encode_and_count(src: torch.Tensor, *args: torch.Tensor) -> DecoderState:
        sizes.append(src.size(0))
        return encode(src, *args)

    translator.model.encode = encode_and_count  # type: ignore[method-assign]
    pooled = translator.translate_lines(lines, batch_size=2)
    assert sizes == [2, 2]  # the four non-empty lines in two search batches of two
    translator.model.encode = encode  # type: ignore[method-assign]
    assert len(pooled) == len(lines)
    for line, hyps in zip(lines, pooled, strict=True):
        alone = translator.translate_lines([line])[0][0]
        assert (hyps[0].text, hyps[0].source) == (alone.text, alone.source)
        assert hyps[0].score == pytest.approx(alone.score, rel=1e-6)
    assert pooled[1][0].text == "" and pooled[1][0].source == []


def test_split_line_attention_is_block_diagonal(tok: Tokenizer) -> None:
    translator = make_translator(tok, max_src_len=10)
    ids = tok.encode(LONG)
    segments = split_long(ids, [tok.id_to_piece(i) for i in ids], 10)
    assert len(segments) > 2
    out = translator.translate_lines([LONG])[0][0]
    assert out.source == [tok.id_to_piece(i) for i in ids]
    assert out.attention is not None
    assert out.attention.shape == (len(out.pieces) + 1, len(ids))
    bounds = torch.tensor([len(s) for s in segments]).cumsum(0)
    parts = [
        int(torch.searchsorted(bounds, int(row.argmax()), right=True)) for row in out.attention
    ]
    for row, part in zip(out.attention, parts, strict=True):
        start = 0 if part == 0 else int(bounds[part - 1])
        assert row[start : int(bounds[part])].sum() == pytest.approx(1.0, abs=1e-5)
    assert parts == sorted(parts) and set(parts) == set(range(len(segments)))


def test_join_parts_drops_inner_eos_rows() -> None:
    a = Translation("x", -1.0, ["x"], torch.tensor([[1.0, 0.0], [0.5, 0.5]]), ["a", "b"])
    b = Translation("y z", -2.0, ["y", "z"], torch.tensor([[1.0], [1.0], [1.0]]), ["c"])
    joined = join_parts([a, b])
    assert (joined.text, joined.score, joined.pieces, joined.source) == (
        "x y z", -3.0, ["x", "y", "z"], ["a", "b", "c"])  # fmt: skip
    expected = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    assert joined.attention is not None and joined.attention.tolist() == expected


def test_records_for_a_sentence_and_an_empty_line() -> None:
    t = Translation(
        "Hi", -0.5, ["▁Hi"], torch.tensor([[0.25, 0.75], [0.123456, 0.876544]]), ["a", "b"]
    )
    assert alignment_record(4, t) == {
        "line": 4,
        "source": ["a", "b"],
        "target": ["▁Hi", "</s>"],
        "weights": [[0.25, 0.75], [0.1235, 0.8765]],
    }
    empty = Translation("", 0.0, [])
    assert alignment_record(5, empty) == {"line": 5, "source": [], "target": [], "weights": []}
    record = json_record(4, [t, empty], n_best=True, with_attention=True)
    assert record["translation"] == "Hi" and record["weights"] == [[0.25, 0.75], [0.1235, 0.8765]]
    assert [h["translation"] for h in record["n_best"]] == ["Hi", ""]
    assert set(json_record(4, [t])) == {"line", "translation", "score", "pieces"}
    assert json.loads(to_json_line(record)) == record and "▁Hi" in to_json_line(record)


def test_no_attention_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no attention"):
        alignment_record(1, Translation("Hi", -0.5, ["▁Hi"], None, ["a"]))


def test_read_alignments_round_trip_and_errors(tmp_path: Path) -> None:
    good = {"line": 1, "source": ["a"], "target": ["b", "</s>"], "weights": [[1.0], [1.0]]}
    path = tmp_path / "align.jsonl"
    path.write_text(to_json_line(good) + "\n")
    assert list(read_alignments(path)) == [good]
    for bad, message in [
        ("{not json", "align.jsonl:2: not JSON"),
        ('{"translation": "x"}', "not an alignment record"),
        ("[1, 2]", "not an alignment record"),
        (json.dumps({**good, "line": "../x"}), "positive line number"),
        (json.dumps({**good, "weights": [[1.0, 0.0], [1.0]]}), "2 rows .* of 1 numbers"),
        (json.dumps({**good, "weights": [[1.0]]}), "2 rows"),
    ]:
        path.write_text(to_json_line(good) + bad + "\n")
        with pytest.raises(DataError, match=message):
            list(read_alignments(path))
    with pytest.raises(DataError, match="cannot read"):
        list(read_alignments(tmp_path / "missing.jsonl"))


def test_parse_lines() -> None:
    chosen = parse_lines("1,2, 5-7,6-6")
    assert chosen.ranges == ((1, 2), (5, 7))
    assert [n for n in range(10) if n in chosen] == [1, 2, 5, 6, 7]
    for bad in ("", "0", "x", "5-3", "2-"):
        with pytest.raises(ConfigError, match="--lines"):
            parse_lines(bad)


def test_a_huge_line_range_is_two_numbers_not_a_billion() -> None:
    """`--lines 1-1000000000` is kept as a range: membership and the missing-lines warning
    cost what the records seen cost, not the range's size (issue 22)."""
    chosen = parse_lines("1-1000000000")
    assert chosen.ranges == ((1, 1_000_000_000),)
    assert 999_999_999 in chosen and 1_000_000_001 not in chosen
    first, count = chosen.missing({1, 3})
    assert first == [2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert count == 1_000_000_000 - 2
