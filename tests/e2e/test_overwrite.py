"""No command writes over one of its own inputs (issue 22): each refuses in one line, before
it writes anything, and the input is left byte for byte as it was.

The same file is reached by its own name, through a symlink and through a hard link.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import nmt

pytestmark = pytest.mark.e2e


def alias(source: Path, target: Path, how: str) -> Path:
    """`target` made to be `source` again: "same" (the name itself), "symlink" or "hardlink"."""
    if how == "same":
        return source
    if how == "symlink":
        target.symlink_to(source)
    else:
        os.link(source, target)
    return target


def one_error_line(result: object, *parts: str) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 1, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr and stderr.count("nmt: error:") == 1, stderr
    line = stderr.strip().splitlines()[-1]
    for part in parts:
        assert part in line, line
    return line


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_translate_output_and_alignments_over_the_input(
    run_dir: Path, tmp_path: Path, how: str
) -> None:
    source = tmp_path / "in.src"
    source.write_text("a b c\n")
    target = alias(source, tmp_path / "out.txt", how)
    for flag in ("-o", "--alignments"):
        result = nmt("translate", str(run_dir), "-i", str(source), flag, str(target), check=False)
        one_error_line(result, str(target), "is also an input")
        assert source.read_text() == "a b c\n"


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_average_out_over_an_input_checkpoint(run_dir: Path, tmp_path: Path, how: str) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    shutil.copy(run_dir / "checkpoints" / "last.pt", a)
    shutil.copy(run_dir / "checkpoints" / "best.pt", b)
    before = b.read_bytes()
    out = alias(b, tmp_path / "avg.pt", how)
    result = nmt("average", str(a), str(b), "--out", str(out), check=False)
    one_error_line(result, str(out), "is also an input")
    assert b.read_bytes() == before


def test_average_out_over_a_checkpoint_the_manifest_lists(run_dir: Path, tmp_path: Path) -> None:
    """Not an input, but the run's manifest lists it: `--resume` would read the average."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    folder = run / "checkpoints"
    listed = json.loads((folder / "manifest.json").read_text())["last"]
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    outside = tmp_path / "outside.pt"
    shutil.copy(folder / "last.pt", outside)
    for out in (folder / listed[0], folder / "best.pt", folder / "last.pt"):
        result = nmt("average", str(outside), "--out", str(out), check=False)
        one_error_line(result, str(out), "is a checkpoint of the run")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_plot_attention_out_over_its_alignments_file(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    folder = tmp_path / "att"
    folder.mkdir()
    records = folder / "line-1.png"  # the alignments file, in the folder the PNGs go to
    nmt("translate", str(run_dir), "--alignments", str(records), input="a b\n")
    before = records.read_bytes()
    result = nmt("plot-attention", str(records), "--out", str(folder), check=False)
    one_error_line(result, str(records), "is also an input")
    assert records.read_bytes() == before


def test_plot_out_over_its_metrics_file(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    metrics = run / "metrics.jsonl"
    before = metrics.read_bytes()
    folder = tmp_path / "plots"
    folder.mkdir()
    os.link(metrics, folder / "valid_ppl.png")
    result = nmt("plot", str(run), "--out", str(folder), check=False)
    one_error_line(result, "valid_ppl.png", "is also an input")
    assert metrics.read_bytes() == before


def test_train_out_is_the_data_folder_or_a_file(data_dir: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in data_dir.iterdir())
    result = nmt("train", str(data_dir), "--out", str(data_dir), check=False)
    one_error_line(result, "is the data folder")
    assert sorted(p.name for p in data_dir.iterdir()) == before
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    result = nmt("train", str(data_dir), "--out", str(a_file), check=False)
    one_error_line(result, str(a_file), "is a file, not a run folder")
    assert a_file.read_text() == "mine\n"
