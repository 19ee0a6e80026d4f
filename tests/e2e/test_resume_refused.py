"""A refused `--resume` changes nothing in the run folder (issue 22): every check runs before
the repair of an interrupted save (re-linking last.pt/best.pt, rewriting the manifest)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from nmt_cli.config import load_config
from nmt_cli.errors import ConfigError
from nmt_cli.train import Trainer

from .conftest import nmt

pytestmark = pytest.mark.e2e


def interrupted_copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the run as a kill -9 between saving the newest step file and registering it
    leaves it: last.pt and the manifest still at the older step file."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    folder = run / "checkpoints"
    manifest = json.loads((folder / "manifest.json").read_text())
    older, newest = manifest["last"][-2:]
    (folder / "last.pt").unlink()
    os.link(folder / older, folder / "last.pt")
    manifest["last"] = manifest["last"][:-1]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert (folder / newest).is_file()
    return run


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file's inode and content hash: a re-link shows as well as a rewrite."""
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_resume_with_another_model_changes_nothing(
    run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    run = interrupted_copy(run_dir, tmp_path)
    before = snapshot(run)
    result = nmt(
        "train", str(data_dir), "--out", str(run), "--resume", "--device", "cpu",
        "--set", "model.cell=gru", check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--resume: model.cell is 'gru'" in result.stderr.strip().splitlines()[-1]
    assert snapshot(run) == before


def test_resume_in_a_read_only_folder_changes_nothing(
    run_dir: Path,
    data_dir: Path,
    config_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As root a folder is never read-only for real, so `os.access` says it is."""
    run = interrupted_copy(run_dir, tmp_path)
    before = snapshot(run)
    config = load_config(run / "config.yaml")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match=r"cannot write \(read-only\); nothing changed"):
        Trainer(config, data_dir, run, "cpu", resume=True)
    monkeypatch.undo()
    assert snapshot(run) == before
    Trainer(config, data_dir, run, "cpu", resume=True)  # and once writable, it repairs
    manifest = json.loads((run / "checkpoints" / "manifest.json").read_text())
    assert os.path.samefile(run / "checkpoints" / manifest["last"][-1], run / "checkpoints/last.pt")
    assert manifest["last"][-1] == "step-60.pt"
