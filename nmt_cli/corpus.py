"""The preprocessed data folder that `nmt preprocess` writes and training reads.

A data folder holds:

- ``meta.json``: format version, languages, tokenizer file names and sizes, ``max_len``, the
  split names and each split's pair count and id types;
- ``spm.model`` (joint vocabulary) or ``spm.<src_lang>.model`` and ``spm.<tgt_lang>.model``;
- ``encoded/``: each split's token ids and offsets, memory-mapped by training (see
  ``nmt_cli.encoded``);
- ``<split>.src`` and ``<split>.ref`` for valid and test sets: the cleaned source and target
  lines of the kept pairs, so BLEU is computed on detokenized text against real references;
- ``summary.txt``: what was kept, dropped and normalized.

``meta.json`` is the completion marker: removed first when a folder is rewritten and written
last, atomically, after every other file is synced to disk. A folder without it is incomplete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmt_cli.encoded import (
    ENCODED_DIR,
    FORMAT_VERSION,
    META_FILE,
    SIDES,
    MappedArray,
    lengths_of,
    side_paths,
)
from nmt_cli.errors import DataError
from nmt_cli.tokenizer import Tokenizer

__all__ = ["FORMAT_VERSION", "META_FILE", "EncodedSplit", "Vocab", "load_meta"]

_META_KEYS = (
    "format_version", "src_lang", "tgt_lang", "joint", "src_spm", "tgt_spm", "splits", "encoded",
)  # fmt: skip


class EncodedSplit:
    """One encoded split: all sentences' ids stored flat, with start offsets per sentence.

    Sentence ``i`` is ``src[src_offsets[i]:src_offsets[i + 1]]``; ids carry no bos/eos. The
    arrays are numpy arrays, in memory (``from_ids``) or memory-mapped from a data folder
    (``open``); only the lengths are held in memory, so bucketing never reads the ids.
    """

    def __init__(
        self,
        src: np.ndarray | torch.Tensor,
        src_offsets: np.ndarray | torch.Tensor,
        tgt: np.ndarray | torch.Tensor,
        tgt_offsets: np.ndarray | torch.Tensor,
        mapped: Sequence[MappedArray] = (),
    ) -> None:
        """Wraps flat id arrays after checking they are consistent.

        Args:
            src: Source ids, any integer type, shape (S,).
            src_offsets: Sentence starts, int64, shape (n + 1,), from 0 to S, non-decreasing.
            tgt: Target ids, shape (T,).
            tgt_offsets: Sentence starts, int64, shape (n + 1,), from 0 to T, non-decreasing.
            mapped: The memory maps behind the arrays, released after each batch.

        Raises:
            DataError: Wrong types or shapes, or offsets that do not index the ids.
        """
        arrays = [np.asarray(a) for a in (src, src_offsets, tgt, tgt_offsets)]
        lengths = []
        for k, name in enumerate(SIDES):
            ids, offsets = arrays[2 * k], arrays[2 * k + 1]
            if ids.dtype.kind not in "iu" or ids.ndim != 1:
                raise DataError(f"{name} must be a 1-D integer array")
            if offsets.dtype != np.int64 or offsets.ndim != 1 or len(offsets) == 0:
                raise DataError(f"{name}_offsets must be a non-empty 1-D int64 array")
            if offsets[0] != 0 or offsets[-1] != len(ids):
                raise DataError(f"{name}_offsets do not index {name} ({len(ids)} ids)")
            try:
                lengths.append(lengths_of(mapped[2 * k + 1] if mapped else _Unmapped(offsets)))
            except ValueError:
                raise DataError(f"{name}_offsets do not index {name} ({len(ids)} ids)") from None
        if len(arrays[1]) != len(arrays[3]):
            raise DataError(
                f"{len(arrays[1]) - 1} source sentences but {len(arrays[3]) - 1} target ones"
            )
        self.src, self.src_offsets, self.tgt, self.tgt_offsets = arrays
        self._src_lengths, self._tgt_lengths = lengths
        self._mapped = tuple(mapped)

    @classmethod
    def from_ids(
        cls, src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]]
    ) -> EncodedSplit:
        """Builds an in-memory split from per-sentence id lists (equally many on both sides)."""
        src, src_offsets = _flatten(src_ids)
        tgt, tgt_offsets = _flatten(tgt_ids)
        return cls(src, src_offsets, tgt, tgt_offsets)

    @classmethod
    def open(cls, data_dir: Path | str, name: str) -> EncodedSplit:
        """Memory-maps split ``name`` of a complete data folder (see ``load_meta``).

        Raises:
            DataError: Not a complete data folder of this format, no such split, or files that
                do not match ``meta.json`` (names the file).
        """
        data_dir = Path(data_dir)
        entry = load_meta(data_dir)["encoded"].get(name)
        if not isinstance(entry, dict):
            raise DataError(f"{data_dir}: no split {name!r}; run nmt preprocess again")
        mapped: list[MappedArray] = []
        for side in SIDES:
            ids_path, offsets_path = side_paths(data_dir, name, side)
            for path, dtype in ((ids_path, entry[f"{side}_dtype"]), (offsets_path, "int64")):
                try:
                    mapped.append(MappedArray(path, np.dtype(dtype)))
                except (OSError, ValueError, TypeError) as err:
                    raise DataError(
                        f"{path}: unreadable ({err}); run nmt preprocess again"
                    ) from None
        if len(mapped[1].array) != entry["pairs"] + 1:
            raise DataError(f"{side_paths(data_dir, name, 'src')[1]}: not {entry['pairs']} pairs")
        try:
            src, src_offsets, tgt, tgt_offsets = (m.array for m in mapped)
            return cls(src, src_offsets, tgt, tgt_offsets, mapped=mapped)
        except DataError as err:
            raise DataError(f"{data_dir / ENCODED_DIR}: {name}: {err}") from None

    def __len__(self) -> int:
        return len(self._src_lengths)

    @property
    def src_lengths(self) -> np.ndarray:
        """Source lengths in tokens, an unsigned numpy array of shape (n,)."""
        return self._src_lengths

    @property
    def tgt_lengths(self) -> np.ndarray:
        """Target lengths in tokens, an unsigned numpy array of shape (n,)."""
        return self._tgt_lengths

    def pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence pair ``i`` as new int32 tensors of shapes (S_i,) and (T_i,), without bos/eos."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"pair index {i} out of range for {n} pairs")
        i %= n
        s0, s1 = self.src_offsets[i : i + 2]
        t0, t1 = self.tgt_offsets[i : i + 2]
        src = torch.from_numpy(self.src[s0:s1].astype(np.int32))
        tgt = torch.from_numpy(self.tgt[t0:t1].astype(np.int32))
        return src, tgt

    def release(self) -> None:
        """Lets go of the mapped pages read so far, so resident memory stays flat."""
        for mapped in self._mapped:
            mapped.release()


class _Unmapped(MappedArray):
    """An in-memory array where a MappedArray is expected (``release`` does nothing)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self._mmap = array, None


def _flatten(ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenates id lists: int32 ids (total,) and int64 start offsets (n + 1,)."""
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    flat = np.fromiter((i for x in ids for i in x), dtype=np.int32, count=int(lengths.sum()))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return flat, offsets


def load_meta(data_dir: Path | str) -> dict[str, Any]:
    """Reads and checks ``meta.json`` of a preprocessed data folder.

    Raises:
        DataError: No such folder, no ``meta.json``, invalid JSON, missing keys, or another
            format version.
    """
    data_dir = Path(data_dir)
    path = data_dir / META_FILE
    if not path.is_file():
        if (data_dir / ENCODED_DIR).is_dir():
            raise DataError(
                f"{data_dir}: incomplete data folder (no {META_FILE}: nmt preprocess was "
                "interrupted or failed while writing it); run nmt preprocess again"
            )
        raise DataError(
            f"{data_dir}: not a preprocessed data folder (no {META_FILE}); run nmt preprocess first"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    version = meta.get("format_version")
    if isinstance(version, int) and version < FORMAT_VERSION:
        raise DataError(
            f"{data_dir}: data folder of an older nmt (format {version}, now {FORMAT_VERSION}); "
            "run nmt preprocess again to rebuild it"
        )
    if version != FORMAT_VERSION:
        raise DataError(
            f"{path}: format_version {version} is not supported "
            f"(expected {FORMAT_VERSION}); run nmt preprocess again"
        )
    missing = [key for key in _META_KEYS if key not in meta]
    if missing:
        raise DataError(f"{path}: missing keys {', '.join(missing)}; run nmt preprocess again")
    return meta


@dataclass
class Vocab:
    """The tokenizers of a preprocessed data folder."""

    src: Tokenizer
    tgt: Tokenizer
    joint: bool
    src_lang: str
    tgt_lang: str

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> Vocab:
        meta = load_meta(data_dir)
        return cls(
            src=Tokenizer.load(data_dir / meta["src_spm"]),
            tgt=Tokenizer.load(data_dir / meta["tgt_spm"]),
            joint=meta["joint"],
            src_lang=meta["src_lang"],
            tgt_lang=meta["tgt_lang"],
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "src_spm": self.src.model_bytes,
            "tgt_spm": self.tgt.model_bytes,
            "joint": self.joint,
            "src_lang": self.src_lang,
            "tgt_lang": self.tgt_lang,
        }
