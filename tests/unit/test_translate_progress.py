"""Counting the lines of an input file for the translation progress bar."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from nmt_cli.translate_progress import count_lines, progress_bar


@pytest.mark.parametrize(
    ("data", "lines"),
    [(b"", 0), (b"a\n", 1), (b"a\nb", 2), (b"a\n\n\n", 3), (b"x" * (3 << 20) + b"\ny", 2)],
)
def test_count_lines_counts_a_last_line_without_newline(
    tmp_path: Path, data: bytes, lines: int
) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    assert count_lines(path) == lines


def test_the_bar_counts_lines_against_the_total() -> None:
    stream = io.StringIO()
    bar = progress_bar(40, stream)
    bar.update(10)
    bar.refresh()
    assert "10/40" in stream.getvalue() and "lines/s" in stream.getvalue()
    bar.close()
