"""A run's checkpoints folder: step files, `best.pt`, `last.pt` and the manifest that ranks them.

A run folder holds `checkpoints/step-N.pt`, `best.pt`, `last.pt` and `manifest.json`. `best.pt`
and `last.pt` are hard links (real files, not symlinks) to the step files, replaced atomically;
the manifest, rewritten atomically, lists the last `keep_last` step files and the best
`keep_best` by score. A kill between those renames leaves `last.pt` behind the newest step file;
`CheckpointManager.recover` finishes such a save before a run resumes. `read_manifest` is the
one reader of `manifest.json`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from nmt_cli.checkpoint import (
    Checkpoint,
    atomic_write_bytes,
    fsync_dir,
    load_checkpoint,
    write_checkpoint,
)
from nmt_cli.errors import CheckpointError

MANIFEST = "manifest.json"
_STEP_FILE = re.compile(r"step-(\d+)\.pt")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ranked:
    """A step file among the best: its score (higher is better) and step."""

    file: str
    score: float
    step: int


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` lists: the step files kept by recency and by score.

    Attributes:
        last: file names, oldest first.
        best: the best first; ties go to the earlier step.
    """

    last: tuple[str, ...] = ()
    best: tuple[Ranked, ...] = ()

    def to_json(self) -> str:
        best = [{"file": b.file, "score": b.score, "step": b.step} for b in self.best]
        return json.dumps({"last": list(self.last), "best": best}, indent=1)

    def kept(self) -> set[str]:
        """The names of every step file it lists."""
        return set(self.last) | {b.file for b in self.best}


def read_manifest(path: Path) -> Manifest | None:
    """Read a `manifest.json`; None if there is none.

    Raises:
        CheckpointError: the file is unreadable, not JSON, or not a manifest's shape.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else str(e).splitlines()[0]
        raise CheckpointError(f"{path}: unreadable manifest ({reason})") from None

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: unreadable manifest ({what})")

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    for key in ("last", "best"):
        if not isinstance(data.get(key), list):
            raise bad(f'"{key}" is not a list')
    if not all(isinstance(name, str) for name in data["last"]):
        raise bad('"last" holds a non-name')
    try:
        best = tuple(
            Ranked(str(b["file"]), float(b["score"]), int(b["step"])) for b in data["best"]
        )
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f'a "best" entry has a bad or missing {e}') from None
    last = tuple(data["last"])
    return Manifest(last, best)


@dataclass(frozen=True)
class Newest:
    """The newest complete checkpoint of a checkpoints folder, as `find_newest` found it.

    Attributes:
        checkpoint: its contents (on the CPU).
        path: its step file (or last.pt when no step file loads).
        registered: last.pt and the manifest already point at it (no repair needed).
    """

    checkpoint: Checkpoint
    path: Path
    registered: bool


def find_newest(folder: Path) -> Newest | None:
    """The newest step file that loads, changing nothing on disk; None if there is none.

    A kill -9 can land after `step-N.pt` is renamed into place but before `last.pt`,
    `best.pt` and the manifest follow. Step files only ever appear whole, so the newest one
    that loads is the run's last checkpoint (`CheckpointManager.adopt` registers it). A step
    file that does not load (damaged on disk) is skipped with a warning.
    """
    try:
        manifest = read_manifest(folder / MANIFEST) or Manifest()
    except CheckpointError:  # rebuilt by adopt() from the step files
        manifest = Manifest()
    last_path = folder / "last.pt"
    steps = sorted(
        (int(m.group(1)), p)
        for p in folder.glob("step-*.pt")
        if (m := _STEP_FILE.fullmatch(p.name))
    )
    for _, path in reversed(steps):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            log.warning("skipping %s", e)
            continue
        registered = (
            last_path.exists()
            and os.path.samefile(path, last_path)
            and manifest.last[-1:] == (path.name,)
        )
        return Newest(ckpt, path, registered)
    return Newest(load_checkpoint(last_path), last_path, True) if last_path.exists() else None


class CheckpointManager:
    """Saves step checkpoints and keeps the last `keep_last` and the best `keep_best`."""

    def __init__(self, run_dir: Path, keep_last: int, keep_best: int) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep_last, self.keep_best = keep_last, keep_best
        self.manifest_path = self.dir / MANIFEST
        for tmp in self.dir.glob(".*.tmp"):  # .NAME.PID.tmp: left by a killed process
            tmp.unlink(missing_ok=True)
        try:
            self.manifest = read_manifest(self.manifest_path) or Manifest()
        except CheckpointError as e:  # recover() rebuilds what it needs from the step files
            log.warning("%s; starting a new one", e)
            self.manifest = Manifest()

    @property
    def last_path(self) -> Path:
        return self.dir / "last.pt"

    def save(self, ckpt: Checkpoint, step: int, score: float | None) -> Path:
        """Write step-N.pt, update last.pt / best.pt and the manifest, prune old files.

        Args:
            ckpt: the checkpoint; its `step` must be `step`.
            step: the update count, which names the file.
            score: the validation score (higher is better), or None if not validated; it is
                stored in the file (`Checkpoint.score`) and ranks it in the manifest.

        Raises:
            CheckpointError: a write failed (e.g. a full disk); the earlier files are intact.
        """
        if ckpt.step != step:
            raise ValueError(f"checkpoint of step {ckpt.step} saved as step {step}")
        path = self.dir / f"step-{step}.pt"
        try:
            write_checkpoint(replace(ckpt, score=score), path)
            self._register(path, step, score)
        except OSError as e:  # e.g. disk full: the earlier files are untouched
            last = f"{self.last_path} is" if self.last_path.exists() else "there is no"
            raise CheckpointError(
                f"{path}: cannot write checkpoint: {e.strerror or e}; "
                f"{last} the last complete checkpoint"
            ) from None
        return path

    def recover(self) -> Checkpoint | None:
        """Finish a save that a crash interrupted; return the newest complete checkpoint.

        `find_newest` then `adopt`: a caller that must check the checkpoint before anything
        in the folder changes (a resume) calls the two itself.

        Returns:
            the newest complete checkpoint (on the CPU), or None.
        """
        newest = find_newest(self.dir)
        if newest is None:
            return None
        self.adopt(newest)
        return newest.checkpoint

    def adopt(self, newest: Newest) -> None:
        """Make `newest` the registered last checkpoint (last.pt, best.pt, the manifest).

        Raises:
            CheckpointError: the folder cannot be updated.
        """
        if newest.registered:
            return
        log.warning("%s was saved but not registered (interrupted save); fixed", newest.path)
        try:
            self._register(newest.path, newest.checkpoint.step, newest.checkpoint.score)
        except OSError as e:
            raise CheckpointError(f"{self.dir}: cannot update ({e.strerror or e})") from None

    def _register(self, path: Path, step: int, score: float | None) -> None:
        """Point last.pt (and best.pt if it is the best) at a written step file, prune."""
        name = path.name
        last = [n for n in self.manifest.last if n != name] + [name]
        best = [b for b in self.manifest.best if b.file != name]
        if score is not None:
            best = sorted([*best, Ranked(name, score, step)], key=lambda b: (-b.score, b.step))
        manifest = Manifest(tuple(last[-self.keep_last :]), tuple(best[: self.keep_best]))
        self._link(path, self.last_path)
        if not manifest.best or manifest.best[0].file == name:  # nothing validated: best = latest
            self._link(path, self.dir / "best.pt")
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
        fsync_dir(self.dir)

    def _write_manifest(self, manifest: Manifest) -> None:
        self.manifest = manifest
        text = manifest.to_json().encode()
        atomic_write_bytes(self.manifest_path, lambda f: f.write(text))

    def _prune(self) -> None:
        keep = self.manifest.kept()
        for path in self.dir.glob("step-*.pt"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
