"""The preprocessed data folder that `nmt preprocess` writes and training reads.

A data folder holds:

- ``meta.json``: languages, tokenizer file names and sizes, ``max_len`` and the split names;
- ``spm.model`` (joint vocabulary) or ``spm.<src_lang>.model`` and ``spm.<tgt_lang>.model``;
- ``<split>.pt`` for train, valid and each test set: a dict of flat tensors (see
  ``EncodedSplit``), loadable with ``torch.load(..., weights_only=True)``;
- ``<split>.src`` and ``<split>.ref`` for valid and test sets: the cleaned source and target
  lines of the kept pairs, so BLEU is computed on detokenized text against real references;
- ``summary.txt``: what was kept, dropped and normalized.

``meta.json`` is written last (and removed first when overwriting), so a folder with one is
complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import torch

from nmt_cli.errors import DataError
from nmt_cli.tokenizer import Tokenizer

FORMAT_VERSION = 1
META_FILE = "meta.json"
_META_KEYS = ("format_version", "src_lang", "tgt_lang", "joint", "src_spm", "tgt_spm", "splits")
_SPLIT_KEYS = ("src", "src_offsets", "tgt", "tgt_offsets")


class EncodedSplit:
    """One encoded split: all sentences' ids stored flat, with start offsets per sentence.

    On disk (``torch.save`` of plain tensors): ``src`` int32 (total source tokens,),
    ``src_offsets`` int64 (n + 1,), and the same for ``tgt``. Sentence ``i`` is
    ``src[src_offsets[i]:src_offsets[i + 1]]``; ids carry no bos/eos.
    """

    def __init__(
        self,
        src: torch.Tensor,
        src_offsets: torch.Tensor,
        tgt: torch.Tensor,
        tgt_offsets: torch.Tensor,
    ) -> None:
        """Wraps flat tensors after checking they are consistent.

        Args:
            src: Source ids, int32, shape (S,).
            src_offsets: Sentence starts, int64, shape (n + 1,), from 0 to S, non-decreasing.
            tgt: Target ids, int32, shape (T,).
            tgt_offsets: Sentence starts, int64, shape (n + 1,), from 0 to T, non-decreasing.

        Raises:
            DataError: Wrong dtypes or shapes, or offsets that do not index the ids.
        """
        for name, ids, offsets in (("src", src, src_offsets), ("tgt", tgt, tgt_offsets)):
            if ids.dtype != torch.int32 or ids.dim() != 1:
                raise DataError(f"{name} must be a 1-D int32 tensor")
            if offsets.dtype != torch.int64 or offsets.dim() != 1 or len(offsets) == 0:
                raise DataError(f"{name}_offsets must be a non-empty 1-D int64 tensor")
            if offsets[0] != 0 or offsets[-1] != len(ids) or bool((offsets.diff() < 0).any()):
                raise DataError(f"{name}_offsets do not index {name} ({len(ids)} ids)")
        if len(src_offsets) != len(tgt_offsets):
            raise DataError(
                f"{len(src_offsets) - 1} source sentences but {len(tgt_offsets) - 1} target ones"
            )
        self.src, self.src_offsets, self.tgt, self.tgt_offsets = src, src_offsets, tgt, tgt_offsets
        self._src_lengths, self._tgt_lengths = src_offsets.diff(), tgt_offsets.diff()
        # Python ints make pair() a cheap slice instead of several tensor indexing calls.
        self._src_starts: list[int] = src_offsets.tolist()
        self._tgt_starts: list[int] = tgt_offsets.tolist()

    @classmethod
    def from_ids(
        cls, src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]]
    ) -> EncodedSplit:
        """Builds a split from per-sentence id lists (equally many on both sides)."""
        src, src_offsets = _flatten(src_ids)
        tgt, tgt_offsets = _flatten(tgt_ids)
        return cls(src, src_offsets, tgt, tgt_offsets)

    @classmethod
    def load(cls, path: Path | str) -> EncodedSplit:
        """Loads a ``<split>.pt`` file written by ``save``.

        Raises:
            DataError: The file is missing, unreadable or not an encoded split (names it).
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for corrupt or foreign files
            raise DataError(f"{path}: not an encoded split ({type(err).__name__})") from None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), torch.Tensor) for k in _SPLIT_KEYS
        ):
            expected = ", ".join(_SPLIT_KEYS)
            raise DataError(f"{path}: not an encoded split (expected tensors {expected})")
        try:
            return cls(*(data[k] for k in _SPLIT_KEYS))
        except DataError as err:
            raise DataError(f"{path}: {err}") from None

    def save(self, path: Path | str) -> None:
        """Writes the four tensors with ``torch.save``."""
        torch.save({key: getattr(self, key) for key in _SPLIT_KEYS}, path)

    def __len__(self) -> int:
        return len(self._src_starts) - 1

    @property
    def src_lengths(self) -> torch.Tensor:
        """Source lengths in tokens, int64, shape (n,)."""
        return self._src_lengths

    @property
    def tgt_lengths(self) -> torch.Tensor:
        """Target lengths in tokens, int64, shape (n,)."""
        return self._tgt_lengths

    def pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence pair ``i`` as int32 views of shapes (S_i,) and (T_i,), without bos/eos.

        The views share memory with the split: copy before modifying them in place.
        """
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"pair index {i} out of range for {n} pairs")
        i %= n
        src = self.src[self._src_starts[i] : self._src_starts[i + 1]]
        tgt = self.tgt[self._tgt_starts[i] : self._tgt_starts[i + 1]]
        return src, tgt


def _flatten(ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenates id lists: int32 ids (total,) and int64 start offsets (n + 1,)."""
    flat = torch.tensor(list(chain.from_iterable(ids)), dtype=torch.int32)
    offsets = torch.zeros(len(ids) + 1, dtype=torch.int64)
    offsets[1:] = torch.tensor([len(x) for x in ids], dtype=torch.int64).cumsum(0)
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
        raise DataError(
            f"{data_dir}: not a preprocessed data folder (no {META_FILE}); run nmt preprocess first"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: format_version {meta.get('format_version')} is not supported "
            f"(expected {FORMAT_VERSION}); rerun nmt preprocess"
        )
    missing = [key for key in _META_KEYS if key not in meta]
    if missing:
        raise DataError(f"{path}: missing keys {', '.join(missing)}; rerun nmt preprocess")
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
