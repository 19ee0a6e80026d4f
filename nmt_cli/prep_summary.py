"""The numbers of one preprocess run, and ``summary.txt`` (``PreprocessSummary.to_text``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nmt_cli.textio import CleanStats


@dataclass(frozen=True)
class LengthStats:
    """Nearest-rank percentiles of sentence lengths in tokens (all 0 for no sentences)."""

    p50: int
    p90: int
    p99: int
    max: int

    @classmethod
    def of(cls, lengths: Sequence[int]) -> LengthStats:
        """Computes the percentiles of ``lengths``."""
        return cls.of_counts(np.bincount(np.asarray(lengths, dtype=np.int64), minlength=1))

    @classmethod
    def of_counts(cls, counts: np.ndarray) -> LengthStats:
        """The percentiles from a histogram: ``counts[k]`` sentences have k tokens."""
        total = int(counts.sum())
        if total == 0:
            return cls(0, 0, 0, 0)
        cumulative = np.cumsum(counts)

        def rank(p: int) -> int:  # the smallest length with at least ceil(p% of total) at or below
            needed = max(-(-p * total // 100), 1)
            return int(np.searchsorted(cumulative, needed))

        return cls(rank(50), rank(90), rank(99), int(np.flatnonzero(counts)[-1]))

    def to_text(self) -> str:
        """E.g. ``"12/19/26/48"`` (p50/p90/p99/max)."""
        return f"{self.p50}/{self.p90}/{self.p99}/{self.max}"


@dataclass
class Drops:
    """Pairs dropped, by reason, in the order the filters apply."""

    bad: int = 0  # undecodable (--skip-bad)
    empty: int = 0  # a side empty after cleaning
    copies: int = 0  # source equal to target (--drop-copies)
    duplicates: int = 0  # a pair seen before (--dedup)
    too_long: int = 0  # a side over max_len tokens (train only)
    over_ratio: int = 0  # longer side over max_ratio x the shorter (--max-ratio)

    def total(self) -> int:
        return sum(vars(self).values())


@dataclass(frozen=True)
class CorpusCount:
    """Pairs read and kept from one ``--train`` prefix."""

    prefix: Path
    pairs_read: int
    pairs_kept: int


@dataclass(frozen=True)
class SplitSummary:
    """What happened to one split.

    Attributes:
        name: Split name, e.g. ``"train"`` or ``"test_2016_flickr"``.
        pairs_read: Lines in each input file (all corpora of the split).
        pairs_kept: Pairs written.
        drops: Pairs dropped, by reason.
        src_tokens: Source tokens written (no bos/eos).
        tgt_tokens: Target tokens written.
        src_lengths: Source length percentiles of the kept pairs.
        tgt_lengths: Target length percentiles of the kept pairs.
        normalized: Lines changed by cleaning, counted over both files.
        corpora: Per ``--train`` prefix counts, when a split has several corpora.
    """

    name: str
    pairs_read: int
    pairs_kept: int
    drops: Drops
    src_tokens: int
    tgt_tokens: int
    src_lengths: LengthStats
    tgt_lengths: LengthStats
    normalized: CleanStats
    corpora: tuple[CorpusCount, ...] = field(default=())

    @property
    def dropped_empty(self) -> int:
        return self.drops.empty

    @property
    def dropped_too_long(self) -> int:
        return self.drops.too_long


@dataclass(frozen=True)
class PreprocessSummary:
    """The numbers of one preprocess run; ``to_text`` is what ``summary.txt`` holds."""

    out_dir: Path
    src_lang: str
    tgt_lang: str
    joint: bool
    model_type: str
    requested_vocab_size: int
    src_vocab_size: int
    tgt_vocab_size: int
    max_len: int
    splits: tuple[SplitSummary, ...]
    max_ratio: float | None = None

    def to_text(self) -> str:
        """A short human-readable report, one table row per split."""
        if self.joint:
            vocab = f"joint {self.model_type} vocabulary of {self.src_vocab_size} pieces"
        else:
            vocab = (
                f"separate {self.model_type} vocabularies: {self.src_lang} "
                f"{self.src_vocab_size} pieces, {self.tgt_lang} {self.tgt_vocab_size} pieces"
            )
        width = max(len("split"), *(len(s.name) for s in self.splits))
        lines = [
            f"{self.src_lang} -> {self.tgt_lang}: {vocab} "
            f"({self.requested_vocab_size} requested), max_len {self.max_len}, in {self.out_dir}",
            "",
            f"{'split':<{width}}  {'pairs':>8}  {'src tokens':>10}  {'tgt tokens':>10}  "
            "src len p50/p90/p99/max  tgt len p50/p90/p99/max",
        ]
        for s in self.splits:
            lines.append(
                f"{s.name:<{width}}  {s.pairs_kept:>8}  {s.src_tokens:>10}  {s.tgt_tokens:>10}  "
                f"{s.src_lengths.to_text():>23}  {s.tgt_lengths.to_text():>23}"
            )
        for s in self.splits:
            if len(s.corpora) > 1:
                lines += ["", f"{s.name} corpora (pairs kept of read):"]
                lines += [f"  {c.prefix}  {c.pairs_kept} of {c.pairs_read}" for c in s.corpora]
        lines += ["", "dropped pairs:"]
        lines += [f"  {s.name:<{width}}  {self._drops_text(s)}" for s in self.splits]
        lines += ["", "normalized lines (source and target):"]
        lines += [f"  {s.name:<{width}}  {s.normalized.to_text()}" for s in self.splits]
        return "\n".join(lines) + "\n"

    def _drops_text(self, s: SplitSummary) -> str:
        d = s.drops
        parts = [f"{d.empty} with an empty side"]
        if s.name == "train":
            parts.append(f"{d.too_long} longer than {self.max_len} tokens")
        if self.max_ratio is not None and s.name == "train":
            parts.append(f"{d.over_ratio} with a length ratio over {self.max_ratio:g}")
        if d.duplicates:
            parts.append(f"{d.duplicates} duplicates")
        if d.copies:
            parts.append(f"{d.copies} with source equal to target")
        if d.bad:
            parts.append(f"{d.bad} undecodable (skipped)")
        return ", ".join(parts) + f" (of {s.pairs_read})"
