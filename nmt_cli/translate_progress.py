"""The progress bar of a file translation: lines done, lines/s and, when the line count is known,
an ETA, on stderr (stdout carries only translations).

`nmt translate` shows it for `--input FILE`, and for piped stdin while stderr is a terminal;
never at the interactive prompt, and never with `nmt -q`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import IO

from tqdm import tqdm

_COUNT_CHUNK = 1 << 20


def count_lines(path: Path) -> int:
    """Lines in a file (a last line without newline counts), read in 1 MiB chunks."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(_COUNT_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def console_is_quiet() -> bool:
    """Did `nmt -q` raise the console's log level above INFO (see nmt_cli.runtime)?"""
    handlers = logging.getLogger().handlers
    return bool(handlers) and all(h.level > logging.INFO for h in handlers)


def wants_progress(input_file: Path | None, stdin: IO[str], stderr: IO[str]) -> bool:
    """Show a bar? For an input file, or piped stdin with stderr on a terminal; not when quiet."""
    if console_is_quiet():
        return False
    return input_file is not None or (not stdin.isatty() and stderr.isatty())


def progress_bar(total: int | None, stream: IO[str] | None = None) -> tqdm:
    """A bar counting translated lines against `total` (None: unknown, no ETA)."""
    return tqdm(
        total=total,
        desc="translate",
        unit=" lines",
        file=stream or sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        leave=False,
    )
