"""The encoded corpus on disk: flat token ids plus offsets, written in chunks, memory-mapped back.

Each split side lives in ``<data>/encoded/``:

- ``<split>.<side>.ids``: every sentence's ids, one after another, no bos/eos, in the smallest
  unsigned type that holds the vocabulary (``id_dtype``);
- ``<split>.<side>.offsets``: int64 sentence starts, n + 1 of them, from 0 to the number of ids.

``side`` is ``src`` or ``tgt``. The folder ``encoded`` has no dot in its name, so no corpus file
``<prefix>.<language>`` can ever be one of these files, whatever the language codes.

Free of torch on purpose: ``nmt preprocess`` and its worker processes import this, and stay
small (each worker would otherwise carry torch's hundreds of MiB).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

FORMAT_VERSION = 2
META_FILE = "meta.json"
ENCODED_DIR = "encoded"
SIDES = ("src", "tgt")


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds ids 0 .. vocab_size - 1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"vocabulary of {vocab_size} pieces is too large")


def side_paths(folder: Path, split: str, side: str) -> tuple[Path, Path]:
    """The ids and offsets files of one side of one split in the data folder ``folder``."""
    base = folder / ENCODED_DIR
    return base / f"{split}.{side}.ids", base / f"{split}.{side}.offsets"


def write_array(file: BinaryIO, array: np.ndarray) -> None:
    """Appends an array's bytes to a file (the one place that writes encoded data)."""
    file.write(np.ascontiguousarray(array).data)


class SplitWriter:
    """Appends encoded pairs of one split to its four files, chunk by chunk.

    Memory holds one chunk at a time. ``close`` flushes and syncs the files to disk, so the
    completion marker written after it never describes data that is still only in memory.
    """

    def __init__(self, folder: Path, split: str, dtypes: tuple[np.dtype, np.dtype]) -> None:
        (folder / ENCODED_DIR).mkdir(parents=True, exist_ok=True)
        self.dtypes = dtypes
        self.pairs = 0
        self._totals = [0, 0]
        self._files: list[tuple[BinaryIO, BinaryIO]] = []
        for side in SIDES:
            ids_path, offsets_path = side_paths(folder, split, side)
            ids = open(ids_path, "wb")  # noqa: SIM115 (closed by close)
            offsets = open(offsets_path, "wb")  # noqa: SIM115
            self._files.append((ids, offsets))
            write_array(offsets, np.zeros(1, dtype=np.int64))

    def append(self, ids: tuple[np.ndarray, np.ndarray], lengths: tuple[np.ndarray, ...]) -> None:
        """Adds P pairs: per side the flat ids (sum of lengths,) and the lengths (P,)."""
        for k, (files, flat, lens) in enumerate(zip(self._files, ids, lengths, strict=True)):
            write_array(files[0], flat.astype(self.dtypes[k], copy=False))
            ends = np.cumsum(lens, dtype=np.int64) + self._totals[k]
            write_array(files[1], ends)
            self._totals[k] += len(flat)
        self.pairs += len(lengths[0])

    def close(self, sync: bool = True) -> None:
        """Closes the files; with ``sync``, their data is on disk when this returns."""
        for files in self._files:
            for file in files:
                if sync and not file.closed:
                    file.flush()
                    os.fsync(file.fileno())
                file.close()


class MappedArray:
    """A read-only numpy view of a whole file through mmap, whose pages can be let go.

    Reading a page of a mapped file makes it count in the process's resident memory until the
    mapping ends; ``release`` drops the pages from this process (the kernel's page cache keeps
    them), so reading a few pairs per batch from a 10 GB corpus keeps memory flat.
    """

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        size = path.stat().st_size
        if size % dtype.itemsize:
            raise ValueError(f"{size} bytes is not a whole number of {dtype} values")
        self._mmap: mmap.mmap | None = None
        if size == 0:
            self.array = np.zeros(0, dtype=dtype)
            return
        with open(path, "rb") as file:
            self._mmap = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        self.array = np.frombuffer(self._mmap, dtype=dtype)

    def release(self) -> None:
        """Lets go of the pages read so far (a no-op where the OS has no MADV_DONTNEED)."""
        if self._mmap is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._mmap.madvise(mmap.MADV_DONTNEED)


def lengths_of(offsets: MappedArray, chunk: int = 1 << 20) -> np.ndarray:
    """Sentence lengths (n,) from offsets (n + 1,), in the smallest type that holds them.

    Reads the offsets a chunk at a time, releasing the pages of each, so a 10 M-sentence split
    costs its lengths (2 bytes a sentence) and not its offsets (8 bytes) in resident memory.

    Raises:
        ValueError: The offsets decrease somewhere.
    """
    values = offsets.array
    n = len(values) - 1
    longest = 0
    for start in range(0, n, chunk):
        diff = np.diff(values[start : start + chunk + 1])
        if int(diff.min()) < 0:
            raise ValueError("offsets decrease")
        longest = max(longest, int(diff.max()))
        offsets.release()
    lengths = np.empty(n, dtype=np.uint16 if longest <= np.iinfo(np.uint16).max else np.uint32)
    for start in range(0, n, chunk):
        lengths[start : start + chunk] = np.diff(values[start : start + chunk + 1])
        offsets.release()
    return lengths
