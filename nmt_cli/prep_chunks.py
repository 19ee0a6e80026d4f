"""Reading parallel files in aligned chunks of raw lines, and mapping work over the chunks in
worker processes (``Workers``) with results in input order.

Free of torch: the worker processes import this module and ``nmt_cli.prep_worker`` only.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np

from nmt_cli.errors import DataError

CHUNK_LINES = 16_384

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Corpus:
    """One pair of line-aligned files: ``prefix.<src_lang>`` and ``prefix.<tgt_lang>``.

    ``protect``: its pairs get copy-through placeholders (``nmt preprocess --protect``).
    """

    prefix: Path
    src_path: Path
    tgt_path: Path
    protect: bool = False

    @classmethod
    def of(cls, prefix: Path, src_lang: str, tgt_lang: str, protect: bool = False) -> Corpus:
        return cls(
            prefix,
            prefix.with_name(f"{prefix.name}.{src_lang}"),
            prefix.with_name(f"{prefix.name}.{tgt_lang}"),
            protect,
        )

    @property
    def files(self) -> str:
        return f"{self.src_path} and {self.tgt_path}"


@dataclass
class Chunk:
    """Consecutive raw lines of one corpus (each with its ``\\n``), numbered from ``first_line``.

    ``keep`` (encoding pass only): which pairs the scan kept, shape (len(src),).
    """

    corpus: Corpus
    first_line: int
    src: list[bytes]
    tgt: list[bytes]
    keep: np.ndarray | None = None


def open_text(path: Path) -> BinaryIO:
    """Opens a text file for reading bytes, with the one-line errors of ``read_lines``."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a text file")
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None


def read_chunks(corpus: Corpus, size: int = CHUNK_LINES) -> Iterator[Chunk]:
    """The corpus as aligned chunks of at most ``size`` line pairs (lines split on ``\\n`` only).

    Raises:
        DataError: A file cannot be read, or the two files have different numbers of lines.
    """
    with open_text(corpus.src_path) as src, open_text(corpus.tgt_path) as tgt:
        line = 1
        try:
            while True:
                src_lines, tgt_lines = list(islice(src, size)), list(islice(tgt, size))
                if len(src_lines) != len(tgt_lines):
                    n_src = line - 1 + len(src_lines) + sum(1 for _ in src)
                    n_tgt = line - 1 + len(tgt_lines) + sum(1 for _ in tgt)
                    raise DataError(
                        f"{corpus.src_path} has {n_src} lines but {corpus.tgt_path} has "
                        f"{n_tgt}; parallel files must have one line per sentence pair"
                    )
                if not src_lines:
                    return
                yield Chunk(corpus, line, src_lines, tgt_lines)
                line += len(src_lines)
        except OSError as err:
            raise DataError(f"{corpus.files}: cannot read ({err.strerror or err})") from None


def _exit_with(parent: int) -> None:
    """In a worker: end as soon as ``parent`` is gone (killed, say), instead of lingering."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class Workers:
    """Worker processes that map a function over items, results in input order.

    At most two items per worker are in flight, so memory stays bounded however long the
    items run (``Pool.imap`` would read all of them ahead). Workers are spawned, not forked:
    they import only what the function needs and share no pages with this process. With one
    worker, everything runs in this process. Use as a context manager.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Workers:
        if self.n > 1:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.n, context, _exit_with, (os.getpid(),))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[T, R]]:
        """``(item, fn(item))`` for each item, in input order."""
        if self._pool is None:
            for item in items:
                yield item, fn(item)
            return
        pending: deque[tuple[T, Future[R]]] = deque()
        for item in items:
            pending.append((item, self._pool.submit(fn, item)))
            if len(pending) >= 2 * self.n:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
