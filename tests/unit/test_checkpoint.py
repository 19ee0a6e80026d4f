"""Checkpoints: atomic writes, last-k / best-k bookkeeping, clear errors on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nmt_cli.checkpoint import (
    CheckpointManager,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from nmt_cli.errors import CheckpointError


def state(value: float) -> dict:
    return {
        "model": {"w": torch.full((3,), value)},
        "spm": b"\x00bytes",
        "rng": torch.get_rng_state(),
    }


def test_manager_keeps_last_and_best(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2, keep_best=2)
    scores = {1: 10.0, 2: 30.0, 3: 20.0, 4: 5.0, 5: 6.0}
    for step, score in scores.items():
        manager.save(state(step), step, score)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*.pt"))
    assert names == ["step-2.pt", "step-3.pt", "step-4.pt", "step-5.pt"]
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert best["model"]["w"][0] == 2 and best["score"] == 30.0
    assert last["model"]["w"][0] == 5
    assert not (tmp_path / "checkpoints" / "best.pt").is_symlink()
    manifest = json.loads((tmp_path / "checkpoints" / "manifest.json").read_text())
    assert [b["step"] for b in manifest["best"]] == [2, 3]
    # a new manager picks up the manifest: best stays best
    again = CheckpointManager(tmp_path, keep_last=2, keep_best=2)
    again.save(state(6), 6, 1.0)
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["model"]["w"][0] == 2
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


def test_bytes_and_rng_survive_safe_loading(tmp_path: Path) -> None:
    save_checkpoint(state(1), tmp_path / "a.pt")
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert loaded["spm"] == b"\x00bytes"
    assert torch.equal(loaded["rng"], torch.get_rng_state())


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    save_checkpoint(state(1), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid nmt checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, not a checkpoint", "not a valid nmt checkpoint"),
        (None, "not an nmt checkpoint"),
    ],
)
def test_foreign_files_are_rejected(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_other_format_version_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "v.pt"
    torch.save({"format_version": 999}, path)
    with pytest.raises(CheckpointError, match="format 999 is not supported"):
        load_checkpoint(path)


def test_pickled_code_is_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": Path("/etc")}, path)  # an arbitrary class
    with pytest.raises(CheckpointError, match="not a valid nmt checkpoint"):
        load_checkpoint(path)


def test_resolve_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no best\.pt"):
        resolve_checkpoint(tmp_path, "best")
    with pytest.raises(CheckpointError, match="no such run folder or checkpoint"):
        resolve_checkpoint(tmp_path / "nope.pt")
