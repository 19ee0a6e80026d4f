"""One `nmt train` per run folder: an exclusive lock on RUN/.train.lock, holding the owner's pid.

Two trainings in one folder would interleave their metrics and leave best.pt and last.pt from
different runs. The lock is an `flock` on the file: the kernel drops it when its process ends,
however it ends, so a lock left by a killed process is free again; the next run takes it over
(and says whose it was). The file is removed when the run ends, so a finished or refused run
leaves the folder as it found it.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from nmt_cli.errors import NmtError

LOCK_FILE = ".train.lock"

log = logging.getLogger(__name__)


class RunInUse(NmtError):
    """Another process trains in the run folder."""


@contextmanager
def run_lock(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Hold the run folder's lock for the block (created with the folder if needed).

    Args:
        run_dir: the run folder.
        enabled: False (e.g. on torchrun ranks other than 0) does nothing.

    Raises:
        RunInUse: another live process holds the lock (names its pid).
        NmtError: the folder cannot be created or written (names it and the reason).
    """
    if not enabled:
        yield
        return
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    fd = _acquire(run_dir / LOCK_FILE)
    try:
        yield
    finally:
        with suppress(OSError):
            os.unlink(run_dir / LOCK_FILE)  # still ours: unlinked before it is released
        os.close(fd)
        if created:  # a run refused before it wrote anything leaves no empty folder behind
            with suppress(OSError):
                run_dir.rmdir()


def _acquire(path: Path) -> int:
    """Lock `path` and write our pid into it; returns the open descriptor."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NmtError(f"{path.parent}: cannot create the run folder ({e.strerror or e})") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise NmtError(f"{path.parent}: cannot write ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_pid(fd)
            os.close(fd)
            raise RunInUse(
                f"{path.parent}: another nmt train (pid {owner or 'unknown'}) is using this run "
                "folder; wait for it to end or use another --out"
            ) from None
        # The owner may have unlinked the file between our open and our lock: then we hold a
        # lock on a removed file, and a third process could lock a new one. Retry on the new.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _read_pid(fd)
    if stale:  # a file whose process died without removing it
        log.warning("%s: taking over the lock of pid %s, which is no longer running", path, stale)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    return text if text.isdigit() else ""
