"""translate_stream: the library call behind `nmt translate`, on in-memory outputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from nmt_cli.config import Config, DecodeConfig, ModelConfig
from nmt_cli.errors import ConfigError
from nmt_cli.model import build_model, init_weights
from nmt_cli.stream import StreamOptions, translate_stream
from nmt_cli.tokenizer import Tokenizer, train_sentencepiece
from nmt_cli.translate import Translator

TEXTS = [f"the {w} number {i} sat on mat {i * 7 % 50}." for i in range(30) for w in ("cat", "dog")]
LINES = ["the cat sat", "", "the dog number 3 sat on mat 21.", "mat"]


@pytest.fixture(scope="module")
def translator() -> Translator:
    tok = Tokenizer.from_bytes(train_sentencepiece(TEXTS, 60))
    small = ModelConfig(emb_size=16, enc_hidden=24, dec_hidden=24, attn_hidden=12, dropout=0.0)
    config = Config(model=small, decode=DecodeConfig(beam=2, max_len_b=4, batch_size=2))
    torch.manual_seed(0)
    model = build_model(config.model, tok.vocab_size, tok.vocab_size, True)
    init_weights(model, 0.3)
    return Translator(model, config, tok, tok, torch.device("cpu"))


def stream(translator: Translator, tmp_path: Path, options: StreamOptions) -> tuple[str, str]:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out, align = io.StringIO(), io.StringIO()
    with source.open("rb") as reader:
        stats = translate_stream(translator, reader, out, options, alignments=align)
    assert stats.lines == len(LINES)
    return out.getvalue(), align.getvalue()


def test_text_output_equals_translate(translator: Translator, tmp_path: Path) -> None:
    text, align = stream(translator, tmp_path, StreamOptions())
    assert text.splitlines() == translator.translate(LINES)
    records = [json.loads(line) for line in align.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3, 4] and records[1]["weights"] == []


def test_n_best_and_json_agree(translator: Translator, tmp_path: Path) -> None:
    n_best, _ = stream(translator, tmp_path, StreamOptions(n_best=2))
    as_json, _ = stream(translator, tmp_path, StreamOptions(n_best=2, output_format="json"))
    rows = [line.split("\t") for line in n_best.splitlines()]
    records = [json.loads(line) for line in as_json.splitlines()]
    assert len(rows) == 2 * len(LINES) and len(records) == len(LINES)
    for record in records:
        mine = [r for r in rows if int(r[0]) == record["line"]]
        assert [r[2] for r in mine][: len(record["n_best"])] == [
            h["translation"] for h in record["n_best"]
        ]


@pytest.mark.parametrize(
    "options",
    [{"beam": 0}, {"n_best": 0}, {"batch_size": 0}, {"with_attention": True}],
)
def test_bad_options_are_config_errors(options: dict) -> None:
    with pytest.raises(ConfigError):
        StreamOptions(**options)
