"""A closed output pipe stops the work in progress, not only the next write."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from nmt_cli.pipewatch import stop_when_closed


def busy(seconds: float) -> None:
    """Pure-Python work, as a long translation pool would be between two writes."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)


def test_closing_the_reader_interrupts_the_block_at_once() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as out:
        threading.Timer(0.2, os.close, args=(read_end,)).start()
        started = time.monotonic()
        with pytest.raises(BrokenPipeError), stop_when_closed(out):
            busy(20)
        assert time.monotonic() - started < 5
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # Python's default is back


def test_an_open_pipe_and_a_file_are_left_alone(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as out, stop_when_closed(out):
        busy(0.2)
    os.close(read_end)
    with open(tmp_path / "out.txt", "w") as file, stop_when_closed(file):
        busy(0.1)
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
