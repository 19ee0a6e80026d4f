"""Checkpoints: atomic, self-contained files and the manager that keeps the last and best k.

A run folder holds `checkpoints/step-N.pt`, `best.pt`, `last.pt` and `manifest.json`. Every
file is written to a temporary name, fsynced and renamed into place, so a kill at any moment
leaves either the old file or the new one, never half of one. `best.pt` and `last.pt` are hard
links (real files, not symlinks) to the step files, replaced atomically. A kill between those
renames leaves `last.pt` behind the newest step file; `CheckpointManager.recover` finishes
such a save before a run resumes. Loading checks every record's CRC-32, so a truncated or
damaged file is an error, never silently wrong weights.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from nmt_cli.errors import CheckpointError

FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"step-(\d+)\.pt")

log = logging.getLogger(__name__)


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


def _write_checkpoint(state: dict[str, Any], path: Path) -> None:
    state = {"format_version": FORMAT_VERSION, **state}
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Atomically write a checkpoint dict (adds the format version)."""
    try:
        _write_checkpoint(state, path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write checkpoint: {e.strerror or e}") from None


def _reason(e: BaseException) -> str:
    return str(e).splitlines()[0][:120] if str(e).strip() else type(e).__name__


def _check_integrity(path: Path) -> None:
    """Check every record's CRC-32 (torch.save writes them; torch.load never reads them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except MemoryError:
        raise
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # zipfile raises many types for damaged archives
        raise CheckpointError(f"{path}: not a valid nmt checkpoint ({_reason(e)})") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint ({damaged} fails its CRC check)")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only: no code runs from the file) and check it.

    Raises:
        CheckpointError: missing, truncated or damaged file, not a checkpoint, other format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    _check_integrity(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except MemoryError:
        raise
    except Exception as e:  # torch raises many types for damaged or foreign files
        raise CheckpointError(f"{path}: not a valid nmt checkpoint ({_reason(e)})") from None
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
        for tmp in self.dir.glob(".*.tmp"):  # .NAME.PID.tmp: left by a killed process
            tmp.unlink(missing_ok=True)
        self.manifest: dict[str, Any] = {"last": [], "best": []}
        if self.manifest_path.exists():
            try:
                self.manifest = json.loads(self.manifest_path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                log.warning("%s unreadable (%s); starting a new one", self.manifest_path, e)

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
        path = self.dir / f"step-{step}.pt"
        try:
            _write_checkpoint({**state, "score": score}, path)
            self._register(path, step, score)
        except OSError as e:  # e.g. disk full: the earlier files are untouched
            last = f"{self.last_path} is" if self.last_path.exists() else "there is no"
            raise CheckpointError(
                f"{path}: cannot write checkpoint: {e.strerror or e}; "
                f"{last} the last complete checkpoint"
            ) from None
        return path

    def recover(self) -> dict[str, Any] | None:
        """Finish a save that a crash interrupted; return the newest complete checkpoint.

        A kill -9 can land after `step-N.pt` is renamed into place but before `last.pt`,
        `best.pt` and the manifest follow, and can leave temp files behind. Step files only
        ever appear whole, so the newest one that loads becomes `last.pt` again (the
        constructor already removed the temp files). A step file that does not load (damaged
        on disk) is skipped with a warning.

        Returns:
            the loaded state of the newest complete checkpoint (on the CPU), or None.
        """
        steps = sorted(
            (int(m.group(1)), p)
            for p in self.dir.glob("step-*.pt")
            if (m := _STEP_FILE.fullmatch(p.name))
        )
        for step, path in reversed(steps):
            try:
                state = load_checkpoint(path)
            except CheckpointError as e:
                log.warning("skipping %s", e)
                continue
            in_place = (
                self.last_path.exists()
                and os.path.samefile(path, self.last_path)
                and self.manifest["last"][-1:] == [path.name]
            )
            if not in_place:
                log.warning("%s was saved but not registered (interrupted save); fixed", path)
                try:
                    self._register(path, step, state.get("score"))
                except OSError as e:
                    raise CheckpointError(
                        f"{self.dir}: cannot update ({e.strerror or e})"
                    ) from None
            return state
        return load_checkpoint(self.last_path) if self.last_path.exists() else None

    def _register(self, path: Path, step: int, score: float | None) -> None:
        """Point last.pt (and best.pt if it is the best) at a written step file, prune."""
        name = path.name
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

    def _link(self, target: Path, link: Path) -> None:
        tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(target, tmp)
        except OSError:  # no hard links on this filesystem: copy
            atomic_write_bytes(tmp, lambda f: f.write(target.read_bytes()))
        try:
            os.replace(tmp, link)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
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
