"""`nmt translate` with repetition guards and sampling, on the tiny trained run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nmt_cli.copy_through import knows_placeholders
from nmt_cli.tokenizer import Tokenizer

from .conftest import nmt

pytestmark = pytest.mark.e2e

SOURCE = "3+4\n\nMarch 3, 1998\n12 + 7\nthe third of march 1998 3+4 12+7 1+1\n"


def pieces(run_dir: Path, *args: str) -> list[list[str]]:
    out = nmt("translate", str(run_dir), "--checkpoint", "last", "--json", *args, input=SOURCE)
    return [json.loads(line)["pieces"] for line in out.stdout.splitlines()]


def test_options_that_are_off_give_todays_output(run_dir: Path) -> None:
    plain = nmt("translate", str(run_dir), "--checkpoint", "last", input=SOURCE).stdout
    off = nmt("translate", str(run_dir), "--checkpoint", "last", "--no-repeat-ngram", "0",
              "--coverage-penalty", "0", input=SOURCE).stdout  # fmt: skip
    assert off == plain and plain.count("\n") == 5


def test_no_repeat_ngram_removes_repeated_pieces(run_dir: Path) -> None:
    for out in pieces(run_dir, "--no-repeat-ngram", "1"):
        assert len(out) == len(set(out))
    assert pieces(run_dir, "--coverage-penalty", "0.4")[1] == []  # the empty line stays empty


def test_seeded_samples_repeat_and_vary(run_dir: Path) -> None:
    args = ("translate", str(run_dir), "--checkpoint", "last", "--sample", "--n-best", "3",
            "--temperature", "1.5", "--seed")  # fmt: skip
    first = nmt(*args, "1", input=SOURCE).stdout
    assert first == nmt(*args, "1", input=SOURCE).stdout
    assert first != nmt(*args, "2", input=SOURCE).stdout
    rows = [line.split("\t") for line in first.splitlines()]
    assert [int(r[0]) for r in rows] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    greedy = nmt("translate", str(run_dir), "--checkpoint", "last", "--beam", "1", input=SOURCE)
    top1 = nmt("translate", str(run_dir), "--checkpoint", "last", "--sample", "--top-k", "1",
               input=SOURCE)  # fmt: skip
    assert top1.stdout == greedy.stdout


def test_bad_sampling_option_is_one_line(run_dir: Path) -> None:
    result = nmt("translate", str(run_dir), "--sample", "--top-p", "0", input="3+4\n", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("nmt: error: sampling needs")


def test_file_jobs_show_progress_on_stderr_only(run_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.src"
    source.write_text(SOURCE)
    plain = nmt("translate", str(run_dir), input=SOURCE).stdout
    shown = nmt("translate", str(run_dir), "--input", str(source))
    assert shown.stdout == plain  # nothing on stdout but translations
    assert "translate:" in shown.stderr and "/5 [" in shown.stderr  # count known: an ETA
    assert "lines/s" in shown.stderr
    quiet = nmt("-q", "translate", str(run_dir), "--input", str(source))
    assert quiet.stdout == plain and "translate:" not in quiet.stderr
    # Piped stdin with stderr not a terminal (a log file): no bar.
    assert "translate:" not in nmt("translate", str(run_dir), input=SOURCE).stderr


def test_protect_never_loses_a_number(run_dir: Path) -> None:
    # The tiny run never saw placeholders: spans stay in its input and its output is checked.
    lines = ["March 3, 1998", "3+4", "the third of march 2150", "mail a@b.org about 12 + 7"]
    result = nmt("translate", str(run_dir), "--checkpoint", "last", "--protect",
                 input="\n".join(lines) + "\n")  # fmt: skip
    outputs = result.stdout.splitlines()
    assert len(outputs) == len(lines)
    put_back = 0
    for i, (line, out) in enumerate(zip(lines, outputs, strict=True), start=1):
        for value in re.findall(r"[\w.]+@[\w.]+|\d+", line):
            assert re.search(rf"(?<!\w){re.escape(value)}(?!\w)", out), (line, out)
        put_back += result.stderr.count(f"line {i}: the model dropped protected")
    assert put_back > 0  # "3" -> "03" at least: the tiny model rewrites numbers


def test_preprocess_protect_makes_placeholders_single_pieces(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    nmt(
        "-q", "preprocess", "--src", "src", "--tgt", "tgt", "--train", str(corpus / "train"),
        "--valid", str(corpus / "valid"), "--test", str(corpus / "test"), "--out", str(out),
        "--vocab-size", "100", "--model-type", "bpe", "--protect",
    )  # fmt: skip
    tokenizer = Tokenizer.load(out / "spm.model")
    assert knows_placeholders(tokenizer)
    # Years appear on both sides of the date pairs: they became placeholders in valid ...
    assert "⦅NUM⦆" in (out / "valid.src").read_text() and "⦅NUM⦆" in (out / "valid.ref").read_text()
    # ... and the test set stays as users will give it.
    assert "⦅" not in (out / "test.src").read_text()
