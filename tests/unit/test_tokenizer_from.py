"""`nmt preprocess --tokenizer-from`: encoding a corpus with an existing model's tokenizers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nmt_cli.checkpoint import Checkpoint, save_checkpoint
from nmt_cli.corpus import EncodedSplit, Vocab, load_meta
from nmt_cli.errors import DataError
from nmt_cli.preprocess import preprocess
from nmt_cli.tokenizer import Tokenizer
from nmt_cli.tokenizer_source import load_tokenizers

_WORDS = ["dog", "cat", "house", "garden", "street", "girl", "man", "woman"]
OLD = [f"the {_WORDS[i % 8]} sees {i % 13} {_WORDS[(i * 3) % 8]}" for i in range(40)]
NEW = [f"a {_WORDS[(i * 5) % 8]} and {i % 7} more" for i in range(30)]


def write_corpus(folder: Path, lines: list[str]) -> Path:
    """train and valid splits, .src = .tgt = lines (a copy task)."""
    folder.mkdir()
    for split, part in (("train", lines), ("valid", lines[:5])):
        for side in ("src", "tgt"):
            (folder / f"{split}.{side}").write_text("".join(f"{x}\n" for x in part))
    return folder


def prepare(raw: Path, out: Path, **kwargs: object) -> Path:
    preprocess("src", "tgt", raw / "train", raw / "valid", out, vocab_size=60, **kwargs)  # type: ignore[arg-type]
    return out


@pytest.fixture
def old_data(tmp_path: Path) -> Path:
    return prepare(write_corpus(tmp_path / "old", OLD), tmp_path / "old-data")


def test_new_corpus_is_encoded_with_the_given_tokenizer(old_data: Path, tmp_path: Path) -> None:
    new = prepare(
        write_corpus(tmp_path / "new", NEW), tmp_path / "new-data", tokenizer_from=old_data
    )
    old_vocab, new_vocab = Vocab.from_data_dir(old_data), Vocab.from_data_dir(new)
    assert new_vocab.src.model_bytes == old_vocab.src.model_bytes
    assert load_meta(new)["joint"] is True
    train = EncodedSplit.open(new, "train")
    assert train.pair(3)[0].tolist() == old_vocab.src.encode(NEW[3])
    # Trained on the new text alone, the tokenizer would have been another one.
    fresh = prepare(tmp_path / "new", tmp_path / "fresh-data")
    assert Vocab.from_data_dir(fresh).src.model_bytes != old_vocab.src.model_bytes


def test_separate_vocabularies_stay_separate(tmp_path: Path) -> None:
    raw = write_corpus(tmp_path / "old", OLD)
    (raw / "train.tgt").write_text("".join(f"{x.upper()}\n" for x in OLD))
    old = prepare(raw, tmp_path / "old-data", separate_vocab=True)
    new = prepare(write_corpus(tmp_path / "new", NEW), tmp_path / "new-data", tokenizer_from=old)
    meta = load_meta(new)
    assert meta["joint"] is False
    assert (new / meta["tgt_spm"]).read_bytes() == (old / "spm.tgt.model").read_bytes()
    assert (new / meta["src_spm"]).read_bytes() == (old / "spm.src.model").read_bytes()


def test_every_kind_of_source_gives_the_same_bytes(old_data: Path, tmp_path: Path) -> None:
    model_bytes = (old_data / "spm.model").read_bytes()
    run = tmp_path / "run"
    run.mkdir()
    (run / "spm.model").write_bytes(model_bytes)  # as `nmt train` writes it
    ckpt = tmp_path / "step-1.pt"
    vocab = Vocab.from_data_dir(old_data).to_state()
    save_checkpoint(Checkpoint(config={}, vocab=vocab, model={"w": torch.zeros(1)}, step=1), ckpt)
    for source in (old_data, old_data / "spm.model", run, ckpt):
        found = load_tokenizers(source)
        assert (found.src.model_bytes, found.tgt.model_bytes, found.joint) == (
            model_bytes,
            model_bytes,
            True,
        ), source


def test_a_run_folder_with_two_vocabularies(tmp_path: Path) -> None:
    src = Tokenizer.load(
        prepare(write_corpus(tmp_path / "a", OLD), tmp_path / "a-data") / "spm.model"
    )
    tgt = Tokenizer.load(
        prepare(write_corpus(tmp_path / "b", NEW), tmp_path / "b-data") / "spm.model"
    )
    run = tmp_path / "run"
    run.mkdir()
    src.save(run / "spm.src.model")
    tgt.save(run / "spm.tgt.model")
    found = load_tokenizers(run)
    assert found.joint is False
    assert (found.src.model_bytes, found.tgt.model_bytes) == (src.model_bytes, tgt.model_bytes)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such run folder, checkpoint or sentencepiece model"),
        (lambda p: p, "no tokenizer here"),
        (lambda p: (p / "x.model").write_text("not a model") and p / "x.model", "x.model: not a"),
    ],
)
def test_unusable_sources_are_one_line_errors(tmp_path: Path, make: object, message: str) -> None:
    source = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(DataError, match=message) as err:
        load_tokenizers(source)
    assert "\n" not in str(err.value)
