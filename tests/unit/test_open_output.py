"""open_output never truncates one of the command's own inputs (issue 22's first class)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nmt_cli.errors import DataError
from nmt_cli.textio import open_output


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink"])
def test_an_input_is_refused_and_left_intact(tmp_path: Path, alias: str) -> None:
    source = tmp_path / "in.de"
    source.write_text("Ein Hund.\n")
    target = {"same": source, "symlink": tmp_path / "link", "hardlink": tmp_path / "hard"}[alias]
    if alias == "symlink":
        target.symlink_to(source)
    elif alias == "hardlink":
        os.link(source, target)
    with pytest.raises(DataError, match="is also an input"):
        open_output(target, [None, source])
    assert source.read_text() == "Ein Hund.\n"


def test_another_file_is_written(tmp_path: Path) -> None:
    source = tmp_path / "in.de"
    source.write_text("x\n")
    with open_output(tmp_path / "out.en", [source]) as out:
        out.write("y\n")
    assert (tmp_path / "out.en").read_text() == "y\n"
