"""`nmt translate` at other precisions, and as an interactive prompt on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmt_cli.precision import resolve_precision

from .conftest import nmt

pytestmark = pytest.mark.e2e


# Of the lines of test.src, the share bf16 / int8 must translate exactly like fp32, and how far
# the scores of those lines may be from fp32's. The tiny run's last checkpoint (best.pt
# translates every line to nothing) agreed on 92-95 % of lines, scores within 0.02 (bf16) and
# 0.05 (int8).
AGREEMENT, SCORE_TOLERANCE = 0.7, 0.25


def translate_json(run_dir: Path, source: str, *args: str) -> tuple[list[dict], str]:
    result = nmt("translate", str(run_dir), "--checkpoint", "last", "--json", *args, input=source)
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_precisions_translate_most_lines_like_fp32(
    run_dir: Path, corpus: Path, precision: str
) -> None:
    lines = [*(corpus / "test.src").read_text().splitlines(), ""]
    source = "\n".join(lines) + "\n"
    reference, _ = translate_json(run_dir, source, "--precision", "fp32")
    out, stderr = translate_json(run_dir, source, "--precision", precision)
    assert [r["line"] for r in out] == list(range(1, len(lines) + 1))
    assert out[-1]["translation"] == ""  # the empty line
    # ... while the tiny model writes something for (nearly) every other line
    assert sum(bool(r["translation"]) for r in reference[:-1]) >= 0.9 * (len(reference) - 1)
    same = [
        (r["score"], o["score"])
        for r, o in zip(reference[:-1], out[:-1], strict=True)
        if r["translation"] == o["translation"]
    ]
    assert len(same) >= AGREEMENT * (len(lines) - 1), f"{precision}: {len(same)} lines as fp32"
    assert max(abs(a - b) for a, b in same) <= SCORE_TOLERANCE
    assert "> " not in stderr  # no prompt when stdin is not a terminal
    assert "arning" not in stderr  # torch's deprecation warnings are not the user's


def test_the_last_stderr_line_reports_what_was_translated_and_how_fast(run_dir: Path) -> None:
    lines = ["3+4", "", "March 3, 1998", "12 + 7"]
    result = nmt("translate", str(run_dir), "--json", input="\n".join(lines) + "\n")
    pieces = sum(len(json.loads(line)["pieces"]) for line in result.stdout.splitlines())
    assert pieces > 0
    assert re.fullmatch(
        rf"translated 4 lines \({pieces:,} target pieces\) in \d+\.\d\d s: [\d,.]+ lines/s, "
        r"[\d,]+ pieces/s; the model loaded in \d+\.\d\d s \((fp32|bf16)\)",
        result.stderr.strip().splitlines()[-1],
    )
    quiet = nmt("-q", "translate", str(run_dir), input="3+4\n")
    assert quiet.stdout.count("\n") == 1 and "translated" not in quiet.stderr


def test_the_default_precision_is_the_one_this_machine_runs_fastest(run_dir: Path) -> None:
    chosen = resolve_precision("auto", torch.device("cpu"))
    source = "3+4\nMarch 3, 1998\n12 + 7\n"
    default, stderr = translate_json(run_dir, source)
    explicit, _ = translate_json(run_dir, source, "--precision", chosen)
    assert default == explicit
    assert stderr.strip().splitlines()[-1].endswith(f"s ({chosen})")


def test_unknown_precision_is_a_one_line_error(run_dir: Path) -> None:
    result = nmt("translate", str(run_dir), "--precision", "fp16", input="3+4\n", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "nmt: error: --precision: unknown 'fp16'; valid: auto, fp32, bf16, int8"
    ]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """`nmt translate` with its stdin on a pseudo-terminal; stdout and stderr are pipes."""

    def __init__(self, *args: str) -> None:
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nmt_cli", "translate", *args],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # As a shell starts a foreground job: Ctrl-C reaches it even when this test process
            # inherited SIGINT as ignored (seen in full-suite runs: SIGHUP, SIGINT and SIGQUIT
            # ignored, which the child would inherit, as a background job does).
            preexec_fn=_default_sigint,
        )
        os.close(slave)
        self.master = master
        self.seen = {"stdout": b"", "stderr": b""}

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait_for(self, stream: str, count: int, text: bytes, timeout: float = 120) -> bytes:
        """Read `stream` until it holds `count` copies of `text`; returns all it holds."""
        pipe = self.proc.stdout if stream == "stdout" else self.proc.stderr
        assert pipe is not None
        deadline = time.monotonic() + timeout
        while self.seen[stream].count(text) < count:
            ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(pipe.fileno(), 4096) if ready else b""
            if not chunk:
                raise AssertionError(f"no {text!r} on {stream}; got {self.seen}")
            self.seen[stream] += chunk
        return self.seen[stream]

    def finish(self) -> tuple[int, str]:
        """Wait for the exit: (exit code, all of stderr)."""
        _, err = self.proc.communicate(timeout=60)
        os.close(self.master)
        return self.proc.returncode, (self.seen["stderr"] + err).decode()


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_prompt_translates_each_line_at_once_and_ends_on_ctrl_d(
    run_dir: Path, json_output: bool
) -> None:
    expected = nmt("translate", str(run_dir), input="3+4\n12 + 7\n").stdout.splitlines()
    terminal = Terminal(str(run_dir), *(["--json"] if json_output else []))
    terminal.wait_for("stderr", 1, b"> ")
    for i, line in enumerate([b"3+4\n", b"12 + 7\n"], start=1):
        terminal.type(line)  # the answer comes without more input or end of input
        out = terminal.wait_for("stdout", i, b"\n").decode().splitlines()
        terminal.wait_for("stderr", i + 1, b"> ")
        if json_output:
            assert json.loads(out[-1])["translation"] == expected[i - 1]
            assert json.loads(out[-1])["line"] == i
        else:
            assert out[-1] == expected[i - 1]
    terminal.type(b"\x04")  # Ctrl-D
    code, stderr = terminal.finish()
    assert code == 0 and stderr == "> > > \n"


def test_ctrl_c_at_the_prompt_ends_quietly(run_dir: Path) -> None:
    terminal = Terminal(str(run_dir))
    terminal.wait_for("stderr", 1, b"> ")
    terminal.proc.send_signal(signal.SIGINT)  # what Ctrl-C on the terminal sends
    code, stderr = terminal.finish()
    assert code == 130 and stderr == "> \n"
