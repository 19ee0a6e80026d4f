"""`nmt export`: a translation-only file that translates exactly as its checkpoint does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from .conftest import nmt
from .test_errors import assert_one_line_error

pytestmark = pytest.mark.e2e

INPUT = "3+4\n12+30\n\n7+6\n"


def test_export_translates_like_its_checkpoint_without_the_optimizer(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.pt"
    result = nmt("export", str(run_dir), "--out", str(out))
    assert "translation only" in result.stdout and str(out) in result.stdout
    best = run_dir / "checkpoints" / "best.pt"
    assert out.stat().st_size < best.stat().st_size
    state = torch.load(out, weights_only=True)
    assert "optimizer" not in state and "rng" not in state
    assert {"model", "config", "vocab"} <= state.keys()
    assert not list(tmp_path.glob(".*tmp")), "the temp file of the atomic write is left"

    original = nmt("translate", str(run_dir), "--beam", "3", input=INPUT).stdout
    exported = nmt("translate", str(out), "--beam", "3", input=INPUT).stdout
    assert exported == original and len(exported.splitlines()) == 4

    info = json.loads(nmt("info", str(out), "--json").stdout)
    assert info["checkpoint"] == str(out) and info["minutes"] is None


def test_export_refuses_to_overwrite_its_source(run_dir: Path, tmp_path: Path) -> None:
    best = run_dir / "checkpoints" / "best.pt"
    result = nmt("export", str(best), "--out", str(best), check=False)
    assert_one_line_error(result, "best.pt", "another file")
    result = nmt("export", str(tmp_path / "none"), "--out", str(tmp_path / "m.pt"), check=False)
    assert_one_line_error(result, "none")
