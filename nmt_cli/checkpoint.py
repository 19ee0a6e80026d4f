"""Checkpoints: atomic, self-contained files and the manager that keeps the last and best k.

A run folder holds `checkpoints/step-N.pt`, `best.pt`, `last.pt` and `manifest.json`. Every
file is written to a temporary name, fsynced and renamed into place, so a kill at any moment
leaves either the old file or the new one, never half of one. `best.pt` and `last.pt` are hard
links (real files, not symlinks) to the step files, replaced atomically.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from nmt_cli.errors import CheckpointError

FORMAT_VERSION = 1


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call `write(file)` on a temp file beside `path`, fsync, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Atomically write a checkpoint dict (adds the format version)."""
    state = {"format_version": FORMAT_VERSION, **state}
    try:
        atomic_write_bytes(path, lambda f: torch.save(state, f))
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write checkpoint: {e.strerror or e}") from None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only: no code runs from the file) and check it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a valid nmt checkpoint ({reason})") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path}: not an nmt checkpoint")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {state['format_version']} is not supported "
            f"(this nmt reads format {FORMAT_VERSION})"
        )
    return state


def resolve_checkpoint(path: Path, which: str = "best") -> Path:
    """A run folder + best|last, or a checkpoint file, -> the .pt file to load."""
    path = Path(path)
    if path.is_dir():
        if which not in ("best", "last"):
            candidate = Path(which)
            return (
                candidate
                if candidate.is_absolute() or candidate.exists()
                else path / "checkpoints" / which
            )
        candidate = path / "checkpoints" / f"{which}.pt"
        if not candidate.is_file():
            raise CheckpointError(
                f"{path}: no {which}.pt in {path / 'checkpoints'} (is it a run folder?)"
            )
        return candidate
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or checkpoint file")
    return path


class CheckpointManager:
    """Saves step checkpoints and keeps the last `keep_last` and the best `keep_best`."""

    def __init__(self, run_dir: Path, keep_last: int, keep_best: int) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep_last, self.keep_best = keep_last, keep_best
        self.manifest_path = self.dir / "manifest.json"
        self.manifest: dict[str, Any] = {"last": [], "best": []}
        if self.manifest_path.exists():
            self.manifest = json.loads(self.manifest_path.read_text())

    @property
    def last_path(self) -> Path:
        return self.dir / "last.pt"

    def save(self, state: dict[str, Any], step: int, score: float | None) -> Path:
        """Write step-N.pt, update last.pt / best.pt and the manifest, prune old files.

        Args:
            state: the checkpoint contents.
            step: the update count.
            score: the validation score (higher is better), or None if not validated.
        """
        name = f"step-{step}.pt"
        path = self.dir / name
        save_checkpoint({**state, "score": score}, path)
        last = [n for n in self.manifest["last"] if n != name] + [name]
        best = [b for b in self.manifest["best"] if b["file"] != name]
        if score is not None:
            best = sorted(
                [*best, {"file": name, "score": score, "step": step}],
                key=lambda b: (-b["score"], b["step"]),
            )
        manifest = {"last": last[-self.keep_last :], "best": best[: self.keep_best]}
        self._link(path, self.last_path)
        if manifest["best"] and manifest["best"][0]["file"] == name:
            self._link(path, self.dir / "best.pt")
        elif not manifest["best"]:
            self._link(path, self.dir / "best.pt")  # nothing validated yet: best = latest
        self._write_manifest(manifest)
        self._prune()
        return path

    def _link(self, target: Path, link: Path) -> None:
        tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(target, tmp)
        except OSError:  # no hard links on this filesystem: copy
            atomic_write_bytes(tmp, lambda f: f.write(target.read_bytes()))
        os.replace(tmp, link)
        _fsync_dir(self.dir)

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        self.manifest = manifest
        text = json.dumps(manifest, indent=1).encode()
        atomic_write_bytes(self.manifest_path, lambda f: f.write(text))

    def _prune(self) -> None:
        keep = set(self.manifest["last"]) | {b["file"] for b in self.manifest["best"]}
        for path in self.dir.glob("step-*.pt"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
