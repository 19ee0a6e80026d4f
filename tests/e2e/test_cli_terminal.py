"""`nmt translate` in a pipe that closes early, and at a terminal with line editing."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_a_reader_that_closes_early_stops_the_translation(run_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "many.src"
    source.write_text("3+4\n12+30\n" * 3000)
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt_cli", "translate", str(run_dir), "--beam", "1",
         "--batch-size", "16", "-i", str(source)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    first_two = [process.stdout.readline(), process.stdout.readline()]  # as `head -2` does
    process.stdout.close()
    closed = time.monotonic()
    code = process.wait(timeout=120)
    stderr = process.stderr.read().decode()
    assert len(first_two) == 2 and all(line.endswith(b"\n") for line in first_two)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert "translated" not in stderr  # it stopped before the end of the input
    assert time.monotonic() - closed < 60


def test_the_interactive_prompt_edits_lines(run_dir: Path) -> None:
    """Arrow keys move the cursor (readline) instead of typing `^[[D` into the sentence."""
    terminal, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt_cli", "translate", str(run_dir), "--beam", "1", "--json",
         "--with-attention"],
        stdin=child, stdout=subprocess.PIPE, stderr=child, env={**os.environ, "TERM": "xterm"},
    )  # fmt: skip
    os.close(child)
    seen = b""

    def read_until(text: bytes, count: int) -> None:
        nonlocal seen
        deadline = time.monotonic() + 120
        while seen.count(text) < count and time.monotonic() < deadline:
            try:
                seen += os.read(terminal, 1024)
            except OSError:
                break

    read_until(b"> ", 1)
    os.write(terminal, b"3+4\x1b[D\x1b[D1\r")  # type 3+4, two steps left, insert 1: 31+4
    read_until(b"> ", 2)
    os.write(terminal, b"\x04")  # Ctrl-D ends the session
    out, _ = process.communicate(timeout=120)
    os.close(terminal)
    assert process.returncode == 0
    (record,) = [json.loads(line) for line in out.decode().splitlines()]
    assert "".join(record["source"]).replace("▁", "") == "31+4", record["source"]
