"""Text reading (textio) and preprocessing into a data folder, on tiny corpora in tmp_path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nmt_cli.corpus import EncodedSplit, load_meta
from nmt_cli.errors import ConfigError, DataError
from nmt_cli.preprocess import LengthStats, PreprocessSummary, preprocess
from nmt_cli.textio import CleanStats, Fix, clean_line, read_lines, read_parallel
from nmt_cli.tokenizer import Tokenizer

_DE = ["Hund", "Katze", "Haus", "Garten", "Straße", "Mädchen", "Mann", "Frau"]
_EN = ["dog", "cat", "house", "garden", "street", "girl", "man", "woman"]
SRC = [f"der {_DE[i % 8]} sieht {i % 13} {_DE[(i * 3) % 8]}" for i in range(40)]
TGT = [f"the {_EN[i % 8]} sees {i % 13} {_EN[(i * 3) % 8]}" for i in range(40)]
LONG = " ".join("0123456789" * 20)  # 200 digits, each its own piece


def write_lines(path: Path, lines: Sequence[str], newline: str = "\n") -> Path:
    path.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    return path


def write_pair(
    folder: Path, name: str, src: Sequence[str], tgt: Sequence[str], newline: str = "\n"
) -> Path:
    write_lines(folder / f"{name}.de", src, newline)
    write_lines(folder / f"{name}.en", tgt, newline)
    return folder / name


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """train: 40 pairs + 1 too long + 2 with an empty side; valid: 5 + 1 long + 1 empty."""
    raw = tmp_path / "raw"
    raw.mkdir()
    write_pair(raw, "train", [*SRC, LONG, "", "ein Hund"], [*TGT, "long", "nothing", "  "])
    write_pair(raw, "valid", [*SRC[:5], LONG, ""], [*TGT[:5], "long", ""])
    write_pair(raw, "test_a", SRC[5:8], TGT[5:8])
    return raw


def run(corpus: Path, out: Path, **kwargs: Any) -> PreprocessSummary:
    args: dict[str, Any] = {"vocab_size": 100, "max_len": 40, **kwargs}
    return preprocess("de", "en", corpus / "train", corpus / "valid", out, **args)


# --- textio ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean", "fixes"),
    [
        ("plain text", "plain text", Fix.NONE),
        ("crlf\r", "crlf", Fix.CRLF),
        ("\ufeffbom", "bom", Fix.BOM),
        ("a\x00b\x0cc\x1bd", "a b c d", Fix.CONTROL),
        ("a\u2028b\x85c", "a b c", Fix.CONTROL),
        ("zero\u200bwidth\u00ad", "zerowidth", Fix.CONTROL),
        ("  two   spaces\tand tab ", "two spaces and tab", Fix.WHITESPACE),
        ("\ufeff a\r", "a", Fix.BOM | Fix.CRLF | Fix.WHITESPACE),
        ("ZWNJ kept: می\u200cخواهم", "ZWNJ kept: می\u200cخواهم", Fix.NONE),
    ],
)
def test_clean_line(raw: str, clean: str, fixes: Fix) -> None:
    assert clean_line(raw) == (clean, fixes)


def test_clean_line_reports_no_change_as_falsy() -> None:
    assert not clean_line("nothing to do")[1]
    assert clean_line("x\r")[1]


def test_read_lines_normalizes_and_counts_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "win.txt"
    path.write_bytes("\ufeffeins\r\nzwei\r\n\r\ndrei".encode())
    stats = CleanStats()
    assert read_lines(path, stats) == ["eins", "zwei", "", "drei"]
    assert stats == CleanStats(lines=3, crlf=3, bom=1, control=0, whitespace=0)


def test_read_lines_splits_on_newline_only(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "odd.txt", ["a\x0bb", "c\u2028d", "e\x1cf", "g\rh"])
    stats = CleanStats()
    assert read_lines(path, stats) == ["a b", "c d", "e f", "g h"]
    assert stats.control == 4


def test_invalid_utf8_names_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.de"
    path.write_bytes(b"gut\n" + "schön\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_lines(path)
    assert str(err.value) == f"{path}:2: invalid UTF-8 (byte 0xf6 at column 4)"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^.*nope\.de: no such file$"):
        read_lines(tmp_path / "nope.de")


def test_folder_as_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a folder"):
        read_lines(tmp_path)


def test_read_parallel_mismatch_names_both_files_and_counts(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.de", ["a", "b", "c"])
    tgt = write_lines(tmp_path / "train.en", ["a", "b"])
    with pytest.raises(DataError, match=f"^{src} has 3 lines but {tgt} has 2"):
        read_parallel(src, tgt)


def test_read_parallel_counts_both_sides(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "x.de", ["a", "b"], newline="\r\n")
    tgt = write_lines(tmp_path / "x.en", ["a\x07", "b"])
    assert read_parallel(src, tgt) == (["a", "b"], ["a", "b"], CleanStats(3, 2, 0, 1, 1))


# --- preprocess -----------------------------------------------------------------------------


def test_joint_vocab_folder(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    summary = run(corpus, out, test_prefixes=[corpus / "test_a"])
    meta = load_meta(out)
    assert meta["joint"] is True
    assert meta["src_spm"] == meta["tgt_spm"] == "spm.model"
    assert meta["splits"] == ["train", "valid", "test_a"]
    assert (
        meta["src_vocab_size"]
        == meta["tgt_vocab_size"]
        == Tokenizer.load(out / "spm.model").vocab_size
    )
    expected = {"meta.json", "spm.model", "summary.txt", "encoded"}
    expected |= {"valid.src", "valid.ref", "test_a.src", "test_a.ref"}
    assert {p.name for p in out.iterdir()} == expected
    encoded = {f"{s}.{side}.{kind}" for s in ("train", "valid", "test_a")
               for side in ("src", "tgt") for kind in ("ids", "offsets")}  # fmt: skip
    assert {p.name for p in (out / "encoded").iterdir()} == encoded
    assert (out / "summary.txt").read_text(encoding="utf-8") == summary.to_text()


def test_separate_vocab_folder(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    run(corpus, out, separate_vocab=True, model_type="bpe")
    meta = load_meta(out)
    assert (meta["joint"], meta["src_spm"], meta["tgt_spm"]) == (
        False,
        "spm.de.model",
        "spm.en.model",
    )
    assert meta["model_type"] == "bpe"
    assert not (out / "spm.model").exists()
    src_tok, tgt_tok = Tokenizer.load(out / "spm.de.model"), Tokenizer.load(out / "spm.en.model")
    assert "Straße" in src_tok.decode(src_tok.encode("die Straße"))
    assert tgt_tok.model_bytes != src_tok.model_bytes


def test_drops_are_counted(corpus: Path, tmp_path: Path) -> None:
    summary = run(corpus, tmp_path / "data", test_prefixes=[corpus / "test_a"])
    train, valid, test = summary.splits
    assert (train.pairs_read, train.dropped_empty, train.dropped_too_long) == (43, 2, 1)
    assert train.pairs_kept == 40
    assert (valid.pairs_read, valid.dropped_empty, valid.dropped_too_long) == (7, 1, 0)
    assert valid.pairs_kept == 6  # the long pair stays in valid
    assert valid.src_lengths.max >= 200
    assert (test.pairs_kept, test.dropped_empty) == (3, 0)
    text = summary.to_text()
    assert "2 with an empty side, 1 longer than 40 tokens (of 43)" in text
    assert "1 with an empty side (of 7)" in text


def test_encoded_pairs_match_kept_lines(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    run(corpus, out)
    tok = Tokenizer.load(out / "spm.model")
    train = EncodedSplit.open(out, "train")
    assert len(train) == 40
    for i in range(len(train)):
        src, tgt = train.pair(i)
        assert src.dtype == torch.int32
        assert (tok.decode(src.tolist()), tok.decode(tgt.tolist())) == (SRC[i], TGT[i])
    assert train.src_lengths.tolist() == [len(tok.encode(s)) for s in SRC]
    assert train.tgt_lengths.dtype == np.uint16
    valid = EncodedSplit.open(out, "valid")
    refs = (out / "valid.ref").read_text(encoding="utf-8").splitlines()
    srcs = (out / "valid.src").read_text(encoding="utf-8").splitlines()
    assert refs == [*TGT[:5], "long"] and srcs == [*SRC[:5], LONG]
    assert [tok.decode(valid.pair(i)[1].tolist()) for i in range(len(valid))] == refs
    assert tok.decode(valid.pair(-1)[0].tolist()) == LONG


def test_normalization_is_counted(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    src = ["\ufeff" + SRC[0], *SRC[1:10]]
    write_pair(raw, "train", src, [TGT[0].replace(" ", "\x00", 1), *TGT[1:10]], newline="\r\n")
    write_pair(raw, "valid", SRC[:2], TGT[:2])
    summary = run(raw, tmp_path / "data")
    assert summary.splits[0].normalized == CleanStats(lines=20, crlf=20, bom=1, control=1)
    assert summary.splits[1].normalized == CleanStats()
    assert "20 lines (20 CRLF, 1 BOM, 1 control chars, 0 whitespace)" in summary.to_text()
    tok = Tokenizer.load(tmp_path / "data" / "spm.model")
    assert tok.decode(EncodedSplit.open(tmp_path / "data", "train").pair(0)[0].tolist()) == SRC[0]


def test_encoded_files_are_plain_arrays(corpus: Path, tmp_path: Path) -> None:
    """ids in the smallest type for the vocabulary (100 pieces: one byte), int64 offsets."""
    out = tmp_path / "data"
    run(corpus, out)
    meta = load_meta(out)
    assert meta["encoded"]["train"] == {"pairs": 40, "src_dtype": "uint8", "tgt_dtype": "uint8"}
    ids = np.fromfile(out / "encoded" / "train.src.ids", dtype=np.uint8)
    offsets = np.fromfile(out / "encoded" / "train.src.offsets", dtype=np.int64)
    assert len(offsets) == 41 and offsets[0] == 0 and offsets[-1] == len(ids)
    tok = Tokenizer.load(out / "spm.model")
    assert tok.decode(ids[offsets[3] : offsets[4]].tolist()) == SRC[3]


def test_same_input_gives_identical_output(corpus: Path, tmp_path: Path) -> None:
    run(corpus, tmp_path / "a")
    run(corpus, tmp_path / "b")
    assert (tmp_path / "a/spm.model").read_bytes() == (tmp_path / "b/spm.model").read_bytes()
    for path in (tmp_path / "a" / "encoded").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / "encoded" / path.name).read_bytes()


def test_all_empty_corpus_names_the_file(tmp_path: Path) -> None:
    write_pair(tmp_path, "train", ["", " ", "a"], ["x", "y", "\t"])
    write_pair(tmp_path, "valid", SRC[:2], TGT[:2])
    with pytest.raises(DataError, match=r"train\.de and .*train\.en: all 3 sentence pairs"):
        run(tmp_path, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_empty_valid_file_is_an_error(tmp_path: Path) -> None:
    write_pair(tmp_path, "train", SRC, TGT)
    write_pair(tmp_path, "valid", [], [])
    with pytest.raises(DataError, match=r"valid\.de and .*valid\.en are empty"):
        run(tmp_path, tmp_path / "data")


def test_all_too_long_is_an_error(tmp_path: Path) -> None:
    write_pair(tmp_path, "train", SRC, TGT)
    write_pair(tmp_path, "valid", SRC[:2], TGT[:2])
    with pytest.raises(DataError, match="longer than max_len=1 tokens"):
        run(tmp_path, tmp_path / "data", max_len=1)


def test_mismatched_split_is_reported(corpus: Path, tmp_path: Path) -> None:
    write_lines(corpus / "valid.en", TGT[:3])
    with pytest.raises(DataError, match=r"valid\.de has 7 lines but .*valid\.en has 3"):
        run(corpus, tmp_path / "data")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_type": "char"}, "unigram, bpe"),
        ({"max_len": 0}, "max_len"),
        ({"test_prefixes": [Path("x/valid")]}, "split 'valid'"),
    ],
)
def test_bad_arguments(corpus: Path, tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run(corpus, tmp_path / "data", **kwargs)


def test_same_language_twice_is_rejected(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both 'de'"):
        preprocess("de", "de", corpus / "train", corpus / "valid", tmp_path / "data")


def test_rerun_overwrites(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    run(corpus, out)
    run(corpus, out, max_len=500)
    assert load_meta(out)["max_len"] == 500
    assert len(EncodedSplit.open(out, "train")) == 41


def test_length_percentiles() -> None:
    assert LengthStats.of(list(range(1, 101))) == LengthStats(50, 90, 99, 100)
    assert LengthStats.of([7]) == LengthStats(7, 7, 7, 7)
    assert LengthStats.of([]) == LengthStats(0, 0, 0, 0)
