"""Input framing for translation: raw bytes in, batches of decoded lines out.

Lines are read as soon as they arrive, so a pipe or a person at a terminal gets each answer
without waiting for a full batch. Invalid UTF-8 never stops the stream: the bad bytes become
U+FFFD, with a warning naming the line.
"""

from __future__ import annotations

import logging
import os
import select
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, BinaryIO

from nmt_cli.errors import DataError

log = logging.getLogger(__name__)


def read_batches(stream: BinaryIO, batch_size: int) -> Iterator[list[str]]:
    """Yield batches of decoded lines as soon as they are available.

    A batch is yielded when it is full, or when no more input is ready right now (an
    interactive user waits for their line, not for 63 more). Invalid UTF-8 is replaced with
    U+FFFD and reported with its line number.
    """
    fd = stream.fileno()
    buffer, line_no, eof = b"", 0, False
    batch: list[str] = []
    while not eof or buffer or batch:
        lines_ready = b"\n" in buffer
        if not eof and not lines_ready:
            chunk = _read(stream, fd)
            eof = not chunk
            buffer += chunk
            if eof and buffer and not buffer.endswith(b"\n"):
                buffer += b"\n"  # a last line without newline still counts
            continue
        while b"\n" in buffer and len(batch) < batch_size:
            raw, buffer = buffer.split(b"\n", 1)
            line_no += 1
            batch.append(_decode(raw, line_no))
        more_ready = b"\n" in buffer or (not eof and _readable(fd))
        if batch and (len(batch) >= batch_size or not more_ready):
            yield batch
            batch = []


def read_prompted(stream: BinaryIO, prompt: IO[str], text: str = "> ") -> Iterator[list[str]]:
    """Interactive input: show `text` on `prompt`, yield each entered line as a batch of one.

    When `stream` is this process's stdin on a terminal and `prompt` is a terminal too, lines
    are read with readline: arrow keys, Ctrl-A/E/K and the other usual keys edit the line,
    and up/down recall earlier lines of the session. Ends at end of input (Ctrl-D), leaving
    the cursor on a fresh line.
    """
    if _can_edit(stream, prompt):
        yield from _read_edited(prompt, text)
        return
    line_no = 0
    while True:
        prompt.write(text)
        prompt.flush()
        raw = stream.readline()
        if not raw:
            prompt.write("\n")
            prompt.flush()
            return
        line_no += 1
        yield [_decode(raw.removesuffix(b"\n"), line_no)]


def _can_edit(stream: BinaryIO, prompt: IO[str]) -> bool:
    """Can `input()` edit lines here (stdin and the prompt on terminals, readline present)?"""
    try:
        if stream.fileno() != sys.stdin.fileno() or not (stream.isatty() and prompt.isatty()):
            return False
        import readline  # noqa: F401  (importing it makes input() edit lines, keep a history)
    except (ImportError, OSError, ValueError, AttributeError):
        return False
    return True


def _read_edited(prompt: IO[str], text: str) -> Iterator[list[str]]:
    """`read_prompted` with readline (see `_can_edit`)."""
    line_no = 0
    while True:
        try:
            with _stdout_on(prompt):
                line = input(text)
        except EOFError:
            prompt.write("\n")
            prompt.flush()
            return
        line_no += 1
        # stdin's error handler may have kept undecodable bytes as surrogates
        yield [_decode(line.encode("utf-8", "surrogateescape"), line_no)]


@contextmanager
def _stdout_on(terminal: IO[str]) -> Iterator[None]:
    """Point file descriptor 1 at `terminal` for a moment, unless it is a terminal already.

    `input()` edits lines only when stdout is a terminal, and readline writes the prompt and
    the echo there; with stdout redirected (`nmt translate RUN > out.en`) they go to the
    prompt's terminal instead, and the translations still go to the redirected stdout.
    """
    out = sys.stdout.fileno()
    if os.isatty(out):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(out)
    os.dup2(terminal.fileno(), out)
    try:
        yield
    finally:
        os.dup2(saved, out)
        os.close(saved)


def _decode(raw: bytes, line_no: int) -> str:
    """UTF-8 -> str; invalid bytes become U+FFFD, with a warning naming the line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        log.warning(
            "line %d: invalid UTF-8 (byte 0x%02x at column %d); replaced",
            line_no,
            raw[e.start],
            e.start + 1,
        )
        return raw.decode("utf-8", errors="replace")


def _read(stream: BinaryIO, fd: int) -> bytes:
    """Up to 64 KiB of what is ready; a read error (stdin is a folder) names the input."""
    try:
        return os.read(fd, 1 << 16)
    except OSError as e:
        name = "stdin" if fd == 0 else getattr(stream, "name", "input")
        raise DataError(f"{name}: cannot read ({e.strerror or e})") from None


def _readable(fd: int) -> bool:
    """Is input waiting on fd right now? (Regular files always are.)"""
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True
