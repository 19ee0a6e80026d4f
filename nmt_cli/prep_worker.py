"""What preprocessing does to one chunk of raw lines, in a worker process (see ``prep_chunks``).

Two passes read every chunk: ``scan_chunk`` decodes and cleans it and says which pairs to keep
(before a tokenizer exists); ``encode_chunk`` cleans the kept pairs again and encodes them.
Cleaning twice costs less than holding a cleaned copy of a 10 M-pair corpus.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from nmt_cli.errors import DataError
from nmt_cli.prep_chunks import Chunk
from nmt_cli.protect import Protector
from nmt_cli.textio import CleanStats, clean_line, decode_line
from nmt_cli.tokenizer import Tokenizer

# Pair status after the scan; the encoding pass drops too long and badly proportioned pairs.
KEEP, EMPTY, BAD, COPY, DUPLICATE = 0, 1, 2, 3, 4
BAD_EXAMPLES = 3
_PROTECTOR = Protector()  # the built-in copy-through patterns (nmt_cli.protect)


@dataclass
class ScanResult:
    """One chunk after the scan: a status per pair (KEEP ...), pair hashes if asked for."""

    status: np.ndarray  # uint8 (P,)
    hashes: np.ndarray | None  # uint64 (P,), of the cleaned pair
    stats: CleanStats
    bad: list[str] = field(default_factory=list)  # the first BAD_EXAMPLES undecodable lines


@dataclass(frozen=True)
class ScanOptions:
    hashes: bool = False  # for --dedup
    copies: bool = False  # mark pairs whose source equals the target (--drop-copies)


def pair_hash(src: str, tgt: str) -> int:
    """A 64-bit hash of a cleaned pair, the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b(f"{src}\n{tgt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _clean_pair(chunk: Chunk, k: int, stats: CleanStats | None) -> tuple[str, str]:
    """Pair k of the chunk, decoded and cleaned; DataError names file and line if undecodable."""
    line = chunk.first_line + k
    src = decode_line(chunk.src[k].removesuffix(b"\n"), chunk.corpus.src_path, line)
    tgt = decode_line(chunk.tgt[k].removesuffix(b"\n"), chunk.corpus.tgt_path, line)
    (src, src_fix), (tgt, tgt_fix) = clean_line(src), clean_line(tgt)
    if stats is not None:
        stats.add(src_fix)
        stats.add(tgt_fix)
    if chunk.corpus.protect:
        return _PROTECTOR.protect_pair(src, tgt)
    return src, tgt


def scan_job(job: tuple[Chunk, ScanOptions]) -> ScanResult:
    return scan_chunk(*job)


def sample_job(chunk: Chunk) -> tuple[list[str], list[str]]:
    """The cleaned text of the chunk's pairs marked in ``chunk.keep``."""
    assert chunk.keep is not None
    pairs = [_clean_pair(chunk, k, None) for k in np.flatnonzero(chunk.keep).tolist()]
    return [s for s, _ in pairs], [t for _, t in pairs]


def scan_chunk(chunk: Chunk, options: ScanOptions) -> ScanResult:
    """Decodes and cleans every pair of the chunk and gives each a status."""
    n = len(chunk.src)
    status = np.zeros(n, dtype=np.uint8)
    hashes = np.zeros(n, dtype=np.uint64) if options.hashes else None
    result = ScanResult(status, hashes, CleanStats())
    for k in range(n):
        try:
            src, tgt = _clean_pair(chunk, k, result.stats)
        except DataError as err:
            status[k] = BAD
            if len(result.bad) < BAD_EXAMPLES:
                result.bad.append(str(err))
            continue
        if not src or not tgt:
            status[k] = EMPTY
        elif options.copies and src == tgt:
            status[k] = COPY
        elif hashes is not None:
            hashes[k] = pair_hash(src, tgt)
    return result


@dataclass(frozen=True)
class EncodeOptions:
    max_len: int | None = None  # drop pairs with a longer side (train only)
    max_ratio: float | None = None  # drop pairs whose longer side is over this x the shorter
    text: bool = False  # return the kept pairs' text too (valid and test sets)
    dtypes: tuple[str, str] = ("int32", "int32")  # id types of source and target
    models: tuple[bytes, bytes] = (b"", b"")  # the sentencepiece models of source and target


@dataclass
class EncodeResult:
    """The kept pairs of one chunk: per side flat ids and lengths (int64, (P,))."""

    ids: tuple[np.ndarray, np.ndarray]
    lengths: tuple[np.ndarray, np.ndarray]
    too_long: int = 0
    over_ratio: int = 0
    text: tuple[list[str], list[str]] | None = None


_LOADED: dict[tuple[bytes, bytes], tuple[Tokenizer, Tokenizer]] = {}


def _tokenizers(models: tuple[bytes, bytes]) -> tuple[Tokenizer, Tokenizer]:
    """The tokenizers of ``models``, loaded once per process."""
    if models not in _LOADED:
        _LOADED.clear()
        src = Tokenizer.from_bytes(models[0])
        _LOADED[models] = (src, src if models[1] == models[0] else Tokenizer.from_bytes(models[1]))
    return _LOADED[models]


def _flat(ids: list[list[int]], dtype: str) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum()))
    return flat, lengths


def encode_job(job: tuple[Chunk, EncodeOptions]) -> EncodeResult:
    return encode_chunk(*job)


def encode_chunk(chunk: Chunk, options: EncodeOptions) -> EncodeResult:
    """Encodes the chunk's kept pairs and applies the length filters of ``options``."""
    tokenizers = _tokenizers(options.models)
    src_text, tgt_text = sample_job(chunk)
    (src, src_len), (tgt, tgt_len) = (
        _flat(tok.encode_batch(text), dtype)
        for tok, text, dtype in zip(tokenizers, (src_text, tgt_text), options.dtypes, strict=True)
    )
    keep = np.ones(len(src_text), dtype=bool)
    result = EncodeResult((src, tgt), (src_len, tgt_len))
    if options.max_len is not None:
        keep &= (src_len <= options.max_len) & (tgt_len <= options.max_len)
        result.too_long = int((~keep).sum())
    if options.max_ratio is not None:
        longer, shorter = np.maximum(src_len, tgt_len), np.maximum(np.minimum(src_len, tgt_len), 1)
        balanced = longer <= options.max_ratio * shorter
        result.over_ratio = int((keep & ~balanced).sum())
        keep &= balanced
    if not keep.all():
        result.ids = (src[np.repeat(keep, src_len)], tgt[np.repeat(keep, tgt_len)])
        result.lengths = (src_len[keep], tgt_len[keep])
    if options.text:
        kept = np.flatnonzero(keep).tolist()
        result.text = ([src_text[i] for i in kept], [tgt_text[i] for i in kept])
    return result
