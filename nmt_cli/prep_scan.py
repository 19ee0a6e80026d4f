"""Passes 1 and 2 of ``nmt preprocess`` (see ``nmt_cli.preprocess``): scan every pair and give it
a status; draw the seeded sample of cleaned text that trains sentencepiece.

Memory per pair: one status byte, and with ``dedup`` an 8-byte hash, never the text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from nmt_cli.errors import ConfigError, DataError
from nmt_cli.prep_chunks import Chunk, Corpus, Workers, read_chunks
from nmt_cli.prep_summary import Drops
from nmt_cli.prep_worker import (
    BAD,
    BAD_EXAMPLES,
    COPY,
    DUPLICATE,
    EMPTY,
    KEEP,
    ScanOptions,
    sample_job,
    scan_job,
)
from nmt_cli.textio import CleanStats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """How ``preprocess`` runs and which optional filters apply to the train split.

    Attributes:
        workers: Processes that clean and encode (1: all in this process).
        spm_sample: At most this many sentences train each sentencepiece model.
        seed: Seed of that sample.
        max_ratio: Drop train pairs whose longer side has more than this x the shorter's tokens.
        dedup: Drop repeated train pairs (by a 64-bit hash of the cleaned pair).
        drop_copies: Drop train pairs whose source equals the target.
        skip_bad: Skip and count undecodable pairs instead of stopping at the first.
        protect: Copy-through placeholders in the train and valid pairs (nmt_cli.protect).
    """

    workers: int = 1
    spm_sample: int = 300_000  # sentencepiece takes ~20 bytes a character of its input
    seed: int = 0
    max_ratio: float | None = None
    dedup: bool = False
    drop_copies: bool = False
    skip_bad: bool = False
    protect: bool = False

    def check(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.spm_sample < 2:
            raise ConfigError(f"spm_sample must be at least 2, got {self.spm_sample}")
        if self.max_ratio is not None and not self.max_ratio >= 1:
            raise ConfigError(f"max_ratio must be at least 1, got {self.max_ratio}")


@dataclass
class Scanned:
    """A split after the scan: per corpus a status per pair (see ``prep_worker``)."""

    name: str
    corpora: list[Corpus]
    status: list[np.ndarray]  # per corpus, uint8 (pairs,)
    hashes: list[np.ndarray]  # per corpus, uint64 (pairs,); empty without dedup
    normalized: CleanStats
    bad: list[str]

    def drops(self) -> Drops:
        counts = np.bincount(np.concatenate(self.status), minlength=DUPLICATE + 1)
        return Drops(
            bad=int(counts[BAD]),
            empty=int(counts[EMPTY]),
            copies=int(counts[COPY]),
            duplicates=int(counts[DUPLICATE]),
        )


def progress(desc: str, total: int | None = None) -> tqdm:
    """A lines/s bar on a terminal, nothing in a log file."""
    return tqdm(
        total=total, desc=desc, unit=" lines", unit_scale=True, dynamic_ncols=True,
        leave=False, disable=not sys.stderr.isatty(),
    )  # fmt: skip


def scan(
    splits: Sequence[tuple[str, list[Corpus]]], options: Options, workers: Workers
) -> list[Scanned]:
    """Pass 1 over every split (see module docstring); raises on the first undecodable line
    unless ``options.skip_bad``, and on a corpus or split left without a pair."""
    flags = ScanOptions(hashes=options.dedup, copies=options.drop_copies)
    result = [Scanned(name, cs, [], [], CleanStats(), []) for name, cs in splits]
    split_of = {id(c): k for k, (_, cs) in enumerate(splits) for c in cs}
    parts: dict[int, list[list[np.ndarray]]] = {id(c): [[], []] for _, cs in splits for c in cs}
    jobs = ((chunk, flags) for _, cs in splits for c in cs for chunk in read_chunks(c))
    with progress("scan") as bar:
        for (chunk, _), found in workers.map(scan_job, jobs):
            split = result[split_of[id(chunk.corpus)]]
            if found.bad and not options.skip_bad:
                raise DataError(f"{found.bad[0]} (--skip-bad drops such pairs)")
            split.bad += found.bad[: BAD_EXAMPLES - len(split.bad)]
            _add_stats(split.normalized, found.stats)
            parts[id(chunk.corpus)][0].append(found.status)
            if found.hashes is not None:
                parts[id(chunk.corpus)][1].append(found.hashes)
            bar.update(len(chunk.src))
    for split in result:
        for corpus in split.corpora:
            status, hashes = parts[id(corpus)]
            split.status.append(np.concatenate(status) if status else np.zeros(0, np.uint8))
            split.hashes.append(np.concatenate(hashes) if hashes else np.zeros(0, np.uint64))
            _check_usable(corpus, split.status[-1])
        for message in split.bad:
            logger.warning("skipped: %s", message)
    return result


def _add_stats(total: CleanStats, part: CleanStats) -> None:
    for key, value in vars(part).items():
        setattr(total, key, getattr(total, key) + value)


def _check_usable(corpus: Corpus, status: np.ndarray) -> None:
    if len(status) == 0:
        raise DataError(f"{corpus.files} are empty")
    if not (status == KEEP).any():
        if (status == EMPTY).all():
            reason = "have an empty side"
        else:
            reason = "are empty, undecodable or filtered out"
        raise DataError(f"{corpus.files}: all {len(status)} sentence pairs {reason}")


def mark_duplicates(train: Scanned) -> None:
    """Marks every kept pair whose hash an earlier kept pair has (over all train corpora)."""
    status, hashes = np.concatenate(train.status), np.concatenate(train.hashes)
    kept = np.flatnonzero(status == KEEP)
    _, first = np.unique(hashes[kept], return_index=True)
    repeated = np.ones(len(kept), dtype=bool)
    repeated[first] = False
    status[kept[repeated]] = DUPLICATE
    bounds = np.cumsum([len(s) for s in train.status])[:-1]
    train.status = np.split(status, bounds)
    train.hashes = []


def sample_text(
    train: Scanned, pairs: int, seed: int, workers: Workers
) -> tuple[list[str], list[str]]:
    """Pass 2: the cleaned text of ``pairs`` kept train pairs drawn with ``seed`` (all of them,
    in corpus order, when there are no more), source and target sides."""
    status = np.concatenate(train.status)
    kept = np.flatnonzero(status == KEEP)
    chosen = np.zeros(len(status), dtype=bool)
    if len(kept) <= pairs:
        chosen[kept] = True
    else:
        chosen[np.sort(np.random.default_rng(seed).choice(kept, pairs, replace=False))] = True
    src: list[str] = []
    tgt: list[str] = []
    with progress("sample", len(status)) as bar:
        for chunk, (s, t) in workers.map(sample_job, marked_chunks(train, chosen)):
            src += s
            tgt += t
            bar.update(len(chunk.src))
    return src, tgt


def marked_chunks(split: Scanned, marks: np.ndarray) -> Iterator[Chunk]:
    """The split's chunks with ``keep`` set from ``marks`` (over all its corpora's pairs)."""
    start = 0
    for corpus, status in zip(split.corpora, split.status, strict=True):
        for chunk in read_chunks(corpus):
            first = start + chunk.first_line - 1
            chunk.keep = marks[first : first + len(chunk.src)]
            yield chunk
        start += len(status)
