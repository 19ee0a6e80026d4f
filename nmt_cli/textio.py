"""Reading text robustly: strict UTF-8, one line per ``\\n``, and per-line cleanup that is counted.

Lines are split on ``\\n`` only (never on the other separators ``str.splitlines`` knows, such
as ``\\x0b``, ``\\x85`` or ``\\u2028``), so a stray separator inside a sentence cannot shift
the alignment of a parallel corpus; it is cleaned to a space instead.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from nmt_cli.errors import DataError

# Unicode category Cc except tab, plus the line and paragraph separators (Zl, Zp): replaced by a
# space, so that words they separated stay apart.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# Invisible characters (zero-width space, word joiner, soft hyphen): removed without a space,
# because some scripts (Thai, Khmer) write a zero-width space where they have no space. ZWJ and
# ZWNJ are kept: they change how Persian, Indic scripts and emoji are written.
_INVISIBLE = re.compile(r"[\u200b\u2060\u00ad]")
_BOM = "\ufeff"


class Fix(enum.Flag):
    """What ``clean_line`` changed in one line; ``Fix.NONE`` is falsy."""

    NONE = 0
    CRLF = enum.auto()  # a trailing "\r" from Windows line ends
    BOM = enum.auto()  # a byte order mark (U+FEFF)
    CONTROL = enum.auto()  # control or invisible characters, e.g. "\x00", "\x0c", U+200B, U+2028
    WHITESPACE = enum.auto()  # runs of whitespace collapsed, or leading/trailing whitespace


@dataclass
class CleanStats:
    """Counts of lines that ``clean_line`` changed, in total and per kind of fix.

    A line with several fixes counts once in ``lines`` and once in each kind.
    """

    lines: int = 0
    crlf: int = 0
    bom: int = 0
    control: int = 0
    whitespace: int = 0

    def add(self, fixes: Fix) -> None:
        """Counts one line's fixes."""
        if fixes:
            self.lines += 1
        self.crlf += Fix.CRLF in fixes
        self.bom += Fix.BOM in fixes
        self.control += Fix.CONTROL in fixes
        self.whitespace += Fix.WHITESPACE in fixes

    def to_text(self) -> str:
        """E.g. ``"3 lines (1 CRLF, 1 BOM, 0 control chars, 2 whitespace)"``."""
        return (
            f"{self.lines} lines ({self.crlf} CRLF, {self.bom} BOM, "
            f"{self.control} control chars, {self.whitespace} whitespace)"
        )


def clean_line(text: str) -> tuple[str, Fix]:
    """Normalizes one line of text and reports what it changed.

    Strips a trailing ``"\\r"``, removes byte order marks and zero-width junk (U+200B, U+2060,
    soft hyphen), replaces control characters (other than tab) and line/paragraph separators
    with a space, collapses runs of whitespace into one space and strips both ends.

    Args:
        text: One line, without its ``"\\n"``.

    Returns:
        The cleaned line and the fixes applied (``Fix.NONE``, which is falsy, if unchanged).
    """
    fixes = Fix.NONE
    if text.endswith("\r"):
        text = text[:-1]
        fixes |= Fix.CRLF
    if _BOM in text:
        text = text.replace(_BOM, "")
        fixes |= Fix.BOM
    cleaned = _INVISIBLE.sub("", _CONTROL.sub(" ", text))
    if cleaned != text:
        fixes |= Fix.CONTROL
    collapsed = " ".join(cleaned.split())
    if collapsed != cleaned:
        fixes |= Fix.WHITESPACE
    return collapsed, fixes


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    """Decodes one line as strict UTF-8, naming file, line and column on failure."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        column = len(raw[: err.start].decode("utf-8")) + 1
        raise DataError(
            f"{path}:{lineno}: invalid UTF-8 (byte 0x{raw[err.start]:02x} at column {column})"
        ) from None


def read_lines(path: Path | str, stats: CleanStats | None = None) -> list[str]:
    """Reads a UTF-8 text file as cleaned lines (see ``clean_line``), one per ``"\\n"``.

    Empty lines are kept, so line numbers and parallel alignment survive. A final line without
    ``"\\n"`` counts as a line; a file ending in ``"\\n"`` has no extra empty last line.

    Args:
        path: The text file.
        stats: If given, the fixes made to each line are added to it.

    Returns:
        The cleaned lines.

    Raises:
        DataError: Missing file, a folder, unreadable file or invalid UTF-8 (names file and line).
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a text file")
    lines: list[str] = []
    try:
        with path.open("rb") as file:
            for lineno, raw in enumerate(file, start=1):  # binary files split on b"\n" only
                line, fixes = clean_line(_decode(raw.removesuffix(b"\n"), path, lineno))
                if stats is not None:
                    stats.add(fixes)
                lines.append(line)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    return lines


def open_input(path: Path) -> BinaryIO:
    """Opens a file to read bytes from (the caller closes it).

    Raises:
        DataError: The file cannot be opened (names it and the reason).
    """
    try:
        return open(path, "rb")
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None


def open_output(path: Path, inputs: Sequence[Path | None] = ()) -> TextIO:
    """Opens a file to write UTF-8 text to, truncating it (the caller closes it).

    Args:
        path: The file to write.
        inputs: Files the command reads: `path` must not be one of them (through symlinks
            and hard links), since truncating it would lose the input.

    Raises:
        DataError: The file is one of `inputs`, or cannot be created or written (names it
            and the reason).
    """
    for source in inputs:
        if source is not None and same_file(path, source):
            raise DataError(f"{path}: is also an input ({source}); write to another file")
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as err:
        raise DataError(f"{path}: cannot write ({err.strerror or err})") from None


def same_file(a: Path, b: Path) -> bool:
    """Are `a` and `b` the same file (through symlinks and hard links)? False if one is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def read_parallel(
    src_path: Path | str, tgt_path: Path | str
) -> tuple[list[str], list[str], CleanStats]:
    """Reads two line-aligned files (see ``read_lines``).

    Args:
        src_path: Source-language text file.
        tgt_path: Target-language text file.

    Returns:
        ``(src_lines, tgt_lines, stats)``: equally long lists of cleaned lines (empty lines
        kept) and the fixes counted over both files.

    Raises:
        DataError: Either file is unreadable, or their line counts differ.
    """
    stats = CleanStats()
    src_lines = read_lines(src_path, stats)
    tgt_lines = read_lines(tgt_path, stats)
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"{src_path} has {len(src_lines)} lines but {tgt_path} has {len(tgt_lines)}; "
            "parallel files must have one line per sentence pair"
        )
    return src_lines, tgt_lines, stats
