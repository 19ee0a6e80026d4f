"""One `nmt train` per run folder (issue 22): a live owner refuses a second process by pid, a
killed owner's lock is taken over, and a released lock leaves the folder as it was."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from nmt_cli.errors import NmtError
from nmt_cli.runlock import LOCK_FILE, RunInUse, run_lock

HOLDER = textwrap.dedent(
    """
    import sys, time
    from nmt_cli.runlock import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the lock of tmp_path/run."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_process_is_refused_with_the_first_ones_pid(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with (
        pytest.raises(RunInUse, match=rf"another nmt train \(pid {holder.pid}\)"),
        run_lock(tmp_path / "run"),
    ):
        pass
    assert (tmp_path / "run" / LOCK_FILE).read_text() == f"{holder.pid}\n"  # left as it was


def test_the_lock_of_a_killed_process_is_taken_over(
    tmp_path: Path, holder: subprocess.Popen[str], caplog: pytest.LogCaptureFixture
) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "run" / LOCK_FILE).exists()  # kill -9: nobody removed it
    with caplog.at_level(logging.WARNING), run_lock(tmp_path / "run"):
        assert f"taking over the lock of pid {holder.pid}" in caplog.text
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_a_released_lock_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with run_lock(run):
        assert (run / LOCK_FILE).is_file()
        with pytest.raises(RunInUse), run_lock(run):  # a second one in this process too
            pass
    assert not run.exists()  # created for the lock, empty, removed
    run.mkdir()
    (run / "keep").write_text("x")
    with run_lock(run):
        pass
    assert sorted(p.name for p in run.iterdir()) == ["keep"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_is_one_line(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with (
            pytest.raises(NmtError, match="cannot create the run folder") as caught,
            run_lock(parent / "run"),
        ):
            pass
        assert "Permission denied" in str(caught.value) or "Read-only" in str(caught.value)
    finally:
        parent.chmod(0o700)
