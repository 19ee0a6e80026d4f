"""translate_stream under hostile input (issue 22): a line of only invalid bytes, a line far
longer than decode.max_src_len, a beam wider than the vocabulary."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import torch

from nmt_cli.config import Config, DecodeConfig, ModelConfig
from nmt_cli.model import build_model, init_weights
from nmt_cli.stream import StreamOptions, translate_stream
from nmt_cli.tokenizer import Tokenizer, train_sentencepiece
from nmt_cli.translate import Translator

TEXTS = [f"the {w} number {i} sat on mat {i * 7 % 50}." for i in range(30) for w in ("cat", "dog")]


@pytest.fixture(scope="module")
def translator() -> Translator:
    tok = Tokenizer.from_bytes(train_sentencepiece(TEXTS, 60))
    small = ModelConfig(emb_size=16, enc_hidden=24, dec_hidden=24, attn_hidden=12, dropout=0.0)
    decode = DecodeConfig(beam=2, max_len_b=4, batch_size=4, max_src_len=20)
    torch.manual_seed(0)
    model = build_model(small, tok.vocab_size, tok.vocab_size, True)
    init_weights(model, 0.3)
    return Translator(model, Config(model=small, decode=decode), tok, tok, torch.device("cpu"))


def run(translator: Translator, tmp_path: Path, data: bytes, **options: object) -> list[str]:
    source = tmp_path / "in.txt"
    source.write_bytes(data)
    out = io.StringIO()
    with source.open("rb") as reader:
        translate_stream(translator, reader, out, StreamOptions(**options))  # type: ignore[arg-type]
    return out.getvalue().split("\n")[:-1]


def test_a_line_of_only_invalid_bytes_costs_only_itself(
    translator: Translator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = ["the cat sat", "mat 7.", "the dog number 3"]
    data = f"{good[0]}\n".encode() + b"\xff\xfe\x80\n" + f"{good[1]}\n{good[2]}\n".encode()
    with caplog.at_level(logging.WARNING):
        lines = run(translator, tmp_path, data, beam=1)
    assert lines == [
        *translator.translate(good[:1], beam=1),
        "",
        *translator.translate(good[1:], 1),
    ]
    assert "line 2: invalid UTF-8 (byte 0xff at column 1); replaced" in caplog.text
    assert "line 2: nothing left to translate; empty output" in caplog.text


def test_a_long_line_keeps_no_attention_unless_asked(translator: Translator) -> None:
    """A line of 1,000 pieces in parts of 20: without alignments no T x S matrix is kept
    (a 1 MB line's would take terabytes); with them it is block-diagonal over the parts."""
    line = " ".join(TEXTS)
    plain = translator.translate_lines([line], beam=1, with_attention=False)[0][0]
    aligned = translator.translate_lines([line], beam=1, with_attention=True)[0][0]
    assert plain.attention is None
    assert plain.text == aligned.text and len(plain.source) > 500
    assert aligned.attention is not None
    assert aligned.attention.shape == (len(aligned.pieces) + 1, len(aligned.source))


def test_a_beam_wider_than_the_vocabulary_is_capped_with_a_note(
    translator: Translator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vocab = translator.tgt_tok.vocab_size
    data = b"the cat sat\nmat 7.\n"
    with caplog.at_level(logging.WARNING):
        wide = run(translator, tmp_path, data, beam=100_000)
    assert caplog.text.count(f"--beam 100000 is more than the {vocab} target pieces") == 1
    assert wide == run(translator, tmp_path, data, beam=vocab)
