"""`nmt average` never writes over what it reads or what a run still lists (issue 22)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nmt_cli.average import check_out, run_checkpoints
from nmt_cli.errors import CheckpointError, ConfigError


def run_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for name in ("step-10.pt", "step-20.pt"):
        (folder / name).write_bytes(name.encode())
    os.link(folder / "step-20.pt", folder / "last.pt")
    os.link(folder / "step-10.pt", folder / "best.pt")
    best = [{"file": "step-10.pt", "score": 1.0, "step": 10}]
    manifest = {"last": ["step-10.pt", "step-20.pt"], "best": best}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_out_over_a_listed_checkpoint_is_refused(tmp_path: Path) -> None:
    folder = run_folder(tmp_path)
    elsewhere = tmp_path / "x.pt"
    for name in ("step-10.pt", "step-20.pt", "best.pt", "last.pt"):
        with pytest.raises(CheckpointError, match="is a checkpoint of the run"):
            check_out(folder / name, [elsewhere])
    link = tmp_path / "link.pt"
    link.symlink_to(folder / "step-20.pt")
    with pytest.raises(CheckpointError, match="is a checkpoint of the run"):
        check_out(link, [elsewhere])
    check_out(folder / "avg.pt", [elsewhere])  # a new name beside them is fine
    check_out(tmp_path / "avg.pt", [elsewhere])


def test_out_over_an_input_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "a.pt"
    source.write_bytes(b"x")
    os.link(source, tmp_path / "hard.pt")
    for out in (source, tmp_path / "hard.pt"):
        with pytest.raises(CheckpointError, match="is also an input"):
            check_out(out, [source])


@pytest.mark.parametrize("count", [0, -1])
def test_counts_must_be_positive(tmp_path: Path, count: int) -> None:
    run_folder(tmp_path)
    with pytest.raises(
        ConfigError, match=rf"--last must be a positive number of checkpoints \(got {count}\)"
    ):
        run_checkpoints(tmp_path / "run", "last", count)
    assert [p.name for p in run_checkpoints(tmp_path / "run", "last", 1)] == ["step-20.pt"]


@pytest.mark.parametrize("text", ["", "{", "null", '{"last": 3, "best": []}'])
def test_a_corrupt_or_empty_manifest_is_one_line(tmp_path: Path, text: str) -> None:
    folder = run_folder(tmp_path)
    (folder / "manifest.json").write_text(text)
    with pytest.raises(CheckpointError, match=r"manifest\.json: unreadable manifest \("):
        run_checkpoints(tmp_path / "run", "last", 1)
