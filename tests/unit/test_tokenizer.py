"""Sentencepiece training and the Tokenizer wrapper, on tiny in-memory corpora."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sentencepiece as spm

from nmt_cli.errors import ConfigError, DataError
from nmt_cli.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    Tokenizer,
    train_sentencepiece,
)

_NOUNS = ["Hund", "Katze", "Haus", "Garten", "Straße", "Mädchen", "Mann", "Frau"]
_VERBS = ["läuft", "spielt", "sitzt", "schläft", "wartet"]
TEXTS = [
    f"Der {_NOUNS[i % 8]} {_VERBS[i % 5]} im {_NOUNS[(i * 3) % 8]} mit {i * 7 % 100} Bällen."
    for i in range(60)
] + [f"The {w.lower()} is {i} years old." for i, w in enumerate(_NOUNS)]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_bytes(train_sentencepiece(TEXTS, 120))


def test_special_ids_are_fixed(tokenizer: Tokenizer) -> None:
    pieces = {i: tokenizer.id_to_piece(i) for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)}
    assert pieces == {0: "<pad>", 1: "<unk>", 2: "<s>", 3: "</s>"}


@pytest.mark.parametrize(
    "text",
    [TEXTS[0], TEXTS[-1], "Die Katze spielt mit 42 Bällen.", "Mann Frau Haus 7"],
)
def test_decode_inverts_encode(tokenizer: Tokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert all(4 <= i < tokenizer.vocab_size for i in ids)  # no bos/eos, no unk
    assert tokenizer.decode(ids) == text
    assert "".join(tokenizer.encode_pieces(text)).replace("▁", " ").strip() == text


def test_encode_batch_matches_encode(tokenizer: Tokenizer) -> None:
    assert tokenizer.encode_batch(TEXTS[:5]) == [tokenizer.encode(t) for t in TEXTS[:5]]


def test_digits_are_single_pieces(tokenizer: Tokenizer) -> None:
    pieces = [p.lstrip("▁") for p in tokenizer.encode_pieces("1234567890")]
    assert [p for p in pieces if p] == list("1234567890")


def test_decode_skips_pad_bos_eos(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("Der Hund schläft.")
    assert tokenizer.decode([BOS_ID, *ids, EOS_ID, PAD_ID, PAD_ID]) == "Der Hund schläft."


def test_unseen_character_is_unknown(tokenizer: Tokenizer) -> None:
    assert UNK_ID in tokenizer.encode("Der Hund 🐕")


def test_vocab_limit_is_soft() -> None:
    small = Tokenizer.from_bytes(train_sentencepiece(TEXTS, 5000))
    assert 4 < small.vocab_size < 5000
    assert small.decode(small.encode(TEXTS[3])) == TEXTS[3]


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_training_is_deterministic(model_type: str) -> None:
    first = train_sentencepiece(TEXTS, 100, model_type)
    assert train_sentencepiece(TEXTS, 100, model_type) == first
    assert Tokenizer.from_bytes(first).vocab_size <= 100


def test_training_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    train_sentencepiece(TEXTS, 100)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_unknown_model_type_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"'word'.*unigram, bpe"):
        train_sentencepiece(TEXTS, 100, "word")


@pytest.mark.parametrize("vocab_size", [4, 10])
def test_too_small_vocab_is_a_config_error(vocab_size: int) -> None:
    with pytest.raises(ConfigError, match="vocab_size"):
        train_sentencepiece(TEXTS, vocab_size)


def test_no_text_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no text"):
        train_sentencepiece(["", ""], 100)


def test_save_and_load_round_trip(tokenizer: Tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "spm.model"
    tokenizer.save(path)
    loaded = Tokenizer.load(path)
    assert loaded.model_bytes == tokenizer.model_bytes == path.read_bytes()
    assert loaded.encode(TEXTS[1]) == tokenizer.encode(TEXTS[1])


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing\.model: no such file"):
        Tokenizer.load(tmp_path / "nothing.model")


@pytest.mark.parametrize("data", [b"", b"not a model"])
def test_load_garbage_names_the_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.model"
    path.write_bytes(data)
    with pytest.raises(DataError, match=r"bad\.model: not a valid sentencepiece model"):
        Tokenizer.load(path)


def test_model_with_other_special_ids_is_rejected() -> None:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(  # sentencepiece's defaults: unk=0, bos=1, eos=2, no pad
        sentence_iterator=iter(TEXTS), model_writer=model, vocab_size=60, minloglevel=2
    )
    with pytest.raises(DataError, match="special ids"):
        Tokenizer.from_bytes(model.getvalue())
