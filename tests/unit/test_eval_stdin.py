"""`nmt eval` reads hypotheses from stdin by the same rules as from a file (issue 22)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from nmt_cli.errors import DataError
from nmt_cli.evaluate import score_files

REF = "A dog runs.\nTwo cats sleep.\n"


def with_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_invalid_utf8_on_stdin_is_refused_like_in_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = tmp_path / "ref.en"
    ref.write_text(REF)
    bad = b"A dog runs.\nTwo \xff cats sleep.\n"
    hyp = tmp_path / "hyp.en"
    hyp.write_bytes(bad)
    with pytest.raises(DataError) as from_file:
        score_files(hyp, ref)
    with_stdin(monkeypatch, bad)
    with pytest.raises(DataError) as from_stdin:
        score_files(None, ref)
    assert str(from_file.value) == f"{hyp}:2: invalid UTF-8 (byte 0xff at column 5)"
    assert str(from_stdin.value) == "stdin:2: invalid UTF-8 (byte 0xff at column 5)"


def test_stdin_and_a_file_score_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = tmp_path / "ref.en"
    ref.write_text(REF)
    hyp_bytes = b"A dog runs .\r\nTwo  cats\tsleep.\n"  # CRLF and whitespace: cleaned alike
    hyp = tmp_path / "hyp.en"
    hyp.write_bytes(hyp_bytes)
    with_stdin(monkeypatch, hyp_bytes)
    assert (
        score_files(None, ref, "bleu,chrf")[0].score == score_files(hyp, ref, "bleu,chrf")[0].score
    )
