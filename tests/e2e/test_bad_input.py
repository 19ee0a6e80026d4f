"""Bad input to the real command (issue 5): a one-line error, or a documented, counted fix."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import pytest
import torch

from nmt_cli.preprocess import preprocess as run_preprocess
from nmt_cli.tokenizer import train_sentencepiece

from .conftest import nmt
from .test_errors import assert_one_line_error, preprocess, write_pair

pytestmark = pytest.mark.e2e

WORDS = ["Hund", "Katze", "Haus", "Garten", "sieht", "der", "die", "ein"]
EN = ["dog", "cat", "house", "garden", "sees", "the", "a", "an"]


def lines(words: list[str], n: int, offset: int = 0) -> list[str]:
    return [" ".join(words[(i * 3 + j + offset) % 8] for j in range(1 + i % 5)) for i in range(n)]


# ---- preprocess ------------------------------------------------------------------------


def test_preprocess_folder_given_as_file(tmp_path: Path) -> None:
    (tmp_path / "train.de").mkdir()
    (tmp_path / "train.en").write_text("a\n")
    assert_one_line_error(preprocess(tmp_path / "train", tmp_path / "out"), "train.de", "folder")


def test_preprocess_empty_corpus(tmp_path: Path) -> None:
    prefix = write_pair(tmp_path, "train", b"", b"")
    assert_one_line_error(preprocess(prefix, tmp_path / "out"), "train.de", "are empty")


def test_preprocess_corpus_of_empty_lines(tmp_path: Path) -> None:
    prefix = write_pair(tmp_path, "train", b"\n \n\t\n", b"\n\n \x0c \n")
    assert_one_line_error(
        preprocess(prefix, tmp_path / "out"), "train.de", "all 3 sentence pairs have an empty side"
    )


def test_preprocess_messy_corpus_is_normalized_and_counted(tmp_path: Path) -> None:
    """CRLF, a BOM, control characters and a 10,000-token line: fixed or dropped, counted."""
    src, tgt = lines(WORDS, 200), lines(EN, 200)
    src[3], tgt[3] = "der\x00Hund\x1bsieht", "the dog\x0csees"  # control characters
    src[50] = " ".join(f"{WORDS[i % 8]}{i % 10}" for i in range(10_000))  # 10,000 tokens
    data = {
        "de": ("\ufeff" + "\r\n".join(src) + "\r\n").encode(),  # BOM + CRLF
        "en": ("\n".join(tgt) + "\n").encode(),
    }
    for lang, raw in data.items():
        (tmp_path / f"train.{lang}").write_bytes(raw)
    result = nmt(
        "preprocess", "--src", "de", "--tgt", "en", "--train", str(tmp_path / "train"),
        "--valid", str(tmp_path / "train"), "--out", str(tmp_path / "out"),
        "--vocab-size", "60", "--max-len", "50",
    )  # fmt: skip
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert summary in result.stdout
    assert "train  0 with an empty side, 1 longer than 50 tokens (of 200)" in summary
    # every train line of .de had CRLF; line 1 a BOM; line 4 control characters on both sides
    assert "train  201 lines (200 CRLF, 1 BOM, 2 control chars, 0 whitespace)" in summary
    valid = (tmp_path / "out" / "valid.src").read_text().splitlines()
    assert valid[0] == src[0] and valid[3] == "der Hund sieht"
    assert not any("\r" in line or "\ufeff" in line for line in valid)


@pytest.mark.parametrize("tokens", [10_000, 40_000])
def test_preprocess_work_does_not_grow_with_a_long_line(tmp_path: Path, tokens: int) -> None:
    """A work bound, not a clock: preprocessing a corpus with one very long line allocates
    little more than the line itself (a quadratic step would show as a multiple of it)."""
    src, tgt = lines(WORDS, 200), lines(EN, 200)
    src[50] = " ".join(f"{WORDS[i % 8]}{i % 10}" for i in range(tokens))
    for lang, text in (("de", src), ("en", tgt)):
        (tmp_path / f"train.{lang}").write_text("\n".join(text) + "\n", encoding="utf-8")
    tracemalloc.start()
    try:
        run_preprocess("de", "en", tmp_path / "train", tmp_path / "train", tmp_path / "out",
                       vocab_size=60, max_len=50)  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * len(src[50]) + 1_500_000, (
        f"peak {peak:,} bytes for a {len(src[50]):,}-char line"
    )


# ---- config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("train.batch_tokens=many", ("train.batch_tokens: expected int", "'many'")),
        ("model.bidirectional=3", ("model.bidirectional: expected bool",)),
        ("model.emb_size=0", ("model.emb_size must be positive (got 0)",)),
        ("train.max_steps=-5", ("train.max_steps must not be negative (got -5)",)),
        ("decode.beam=0", ("decode.beam must be positive",)),
    ],
)
def test_train_bad_config_values(
    data_dir: Path, tmp_path: Path, override: str, fragments: tuple[str, ...]
) -> None:
    result = nmt(
        "train", str(data_dir), "--out", str(tmp_path / "r"), "--set", override, check=False
    )
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "r").exists()  # nothing written


def test_train_bad_config_file(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  enc_layers: two\n")
    result = nmt(
        "train", str(data_dir), "--out", str(tmp_path / "r"), "--config", str(config), check=False
    )
    assert_one_line_error(result, "model.enc_layers: expected int", "'two'")


def test_resume_with_another_vocabulary_is_refused(
    run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    other_data = tmp_path / "data"
    shutil.copytree(data_dir, other_data)
    text = [f"{a} {b} {c}" for a in "0123456789" for b in "+-=ab" for c in "xyz"]
    (other_data / "spm.model").write_bytes(train_sentencepiece(text, 40))
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(run_dir / "config.yaml", run / "config.yaml")
    (run / "checkpoints").mkdir()
    shutil.copy(run_dir / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    result = nmt("train", str(other_data), "--out", str(run), "--resume", check=False)
    assert_one_line_error(result, "--resume", "another vocabulary than the checkpoint")


# ---- translate -------------------------------------------------------------------------


def test_translate_whitespace_and_overlong_lines(run_dir: Path) -> None:
    """decode.max_src_len is 200 here: a 450-piece line is split (warning), never dropped."""
    long = "+".join(str(i % 10) for i in range(225))  # digits are single pieces: ~450 pieces
    source = ["3+4", "\t \u3000 ", long, "", "12 + 7"]
    result = nmt("translate", str(run_dir), "--beam", "1", input="\n".join(source) + "\n")
    out = result.stdout.split("\n")
    assert len(out) == len(source) + 1 and out[-1] == ""  # one line per input line
    assert out[1] == "" and out[3] == "" and out[2] != ""
    assert "line 3:" in result.stderr and "longer than 200; translated in" in result.stderr
    assert "Traceback" not in result.stderr


# ---- checkpoints -----------------------------------------------------------------------


def damaged(run_dir: Path, tmp_path: Path, kind: str) -> Path:
    good = (run_dir / "checkpoints" / "best.pt").read_bytes()
    path = tmp_path / f"{kind}.pt"
    if kind == "truncated":
        path.write_bytes(good[: len(good) * 2 // 3])
    elif kind == "flipped":
        data = bytearray(good)
        data[len(data) // 2] ^= 0x10  # inside the weights
        path.write_bytes(bytes(data))
    elif kind == "other-version":
        torch.save({"format_version": 99, "model": {}}, path)
    else:  # a valid torch file that is not an nmt checkpoint
        torch.save({"weights": torch.zeros(3)}, path)
    return path


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("truncated", "not a valid nmt checkpoint"),
        ("flipped", "fails its CRC check"),
        ("other-version", "checkpoint format 99, this nmt reads format 1"),
        ("not-a-checkpoint", "not an nmt checkpoint"),
    ],
)
def test_translate_bad_checkpoint_files(
    run_dir: Path, tmp_path: Path, kind: str, fragment: str
) -> None:
    path = damaged(run_dir, tmp_path, kind)
    result = nmt("translate", str(path), input="3+4\n", check=False)
    assert_one_line_error(result, str(path), fragment)
