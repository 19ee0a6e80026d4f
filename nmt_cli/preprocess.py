"""Validate and filter parallel text, train sentencepiece, and write the encoded corpus.

The folder it writes is described in `nmt_cli.corpus` (which also reads it back);
``summary.txt`` is ``PreprocessSummary.to_text``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmt_cli.corpus import FORMAT_VERSION, META_FILE, EncodedSplit
from nmt_cli.errors import ConfigError, DataError
from nmt_cli.hints import check_prefix
from nmt_cli.textio import CleanStats, read_parallel
from nmt_cli.tokenizer import Tokenizer, train_sentencepiece

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.txt"
_LANG = re.compile(r"[A-Za-z0-9_-]+")


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
        ordered = sorted(lengths)
        if not ordered:
            return cls(0, 0, 0, 0)

        def rank(p: int) -> int:
            return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]

        return cls(rank(50), rank(90), rank(99), ordered[-1])

    def to_text(self) -> str:
        """E.g. ``"12/19/26/48"`` (p50/p90/p99/max)."""
        return f"{self.p50}/{self.p90}/{self.p99}/{self.max}"


@dataclass(frozen=True)
class SplitSummary:
    """What happened to one split.

    Attributes:
        name: Split name, e.g. ``"train"`` or ``"test_2016_flickr"``.
        pairs_read: Lines in each input file.
        pairs_kept: Pairs written.
        dropped_empty: Pairs dropped because a side was empty after cleaning.
        dropped_too_long: Pairs dropped for more than ``max_len`` tokens on a side (train only).
        src_tokens: Source tokens written (no bos/eos).
        tgt_tokens: Target tokens written.
        src_lengths: Source length percentiles of the kept pairs.
        tgt_lengths: Target length percentiles of the kept pairs.
        normalized: Lines changed by cleaning, counted over both files.
    """

    name: str
    pairs_read: int
    pairs_kept: int
    dropped_empty: int
    dropped_too_long: int
    src_tokens: int
    tgt_tokens: int
    src_lengths: LengthStats
    tgt_lengths: LengthStats
    normalized: CleanStats


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
        lines += ["", "dropped pairs:"]
        for s in self.splits:
            too_long = f", {s.dropped_too_long} longer than {self.max_len} tokens"
            lines.append(
                f"  {s.name:<{width}}  {s.dropped_empty} with an empty side"
                + (too_long if s.name == "train" else "")
                + f" (of {s.pairs_read})"
            )
        lines += ["", "normalized lines (source and target):"]
        lines += [f"  {s.name:<{width}}  {s.normalized.to_text()}" for s in self.splits]
        return "\n".join(lines) + "\n"


@dataclass
class _Split:
    """A split read from disk, with pairs that have an empty side already dropped."""

    name: str
    src_path: Path
    tgt_path: Path
    pairs_read: int
    src_lines: list[str]
    tgt_lines: list[str]
    normalized: CleanStats

    @property
    def files(self) -> str:
        return f"{self.src_path} and {self.tgt_path}"


def _read_split(name: str, prefix: Path, src_lang: str, tgt_lang: str) -> _Split:
    """Reads ``prefix.src_lang`` and ``prefix.tgt_lang`` and drops pairs with an empty side."""
    check_prefix(name if name in ("train", "valid") else "test", prefix, (src_lang, tgt_lang))
    src_path = prefix.with_name(f"{prefix.name}.{src_lang}")
    tgt_path = prefix.with_name(f"{prefix.name}.{tgt_lang}")
    src_all, tgt_all, normalized = read_parallel(src_path, tgt_path)
    pairs = [(s, t) for s, t in zip(src_all, tgt_all, strict=True) if s and t]
    split = _Split(
        name=name,
        src_path=src_path,
        tgt_path=tgt_path,
        pairs_read=len(src_all),
        src_lines=[s for s, _ in pairs],
        tgt_lines=[t for _, t in pairs],
        normalized=normalized,
    )
    if not pairs:
        if not src_all:
            raise DataError(f"{split.files} are empty")
        raise DataError(f"{split.files}: all {len(src_all)} sentence pairs have an empty side")
    return split


def _check_args(src_lang: str, tgt_lang: str, max_len: int, test_prefixes: Sequence[Path]) -> None:
    """Raises ConfigError for arguments that cannot work, before any file is read."""
    for lang in (src_lang, tgt_lang):
        if not _LANG.fullmatch(lang):
            raise ConfigError(f"language {lang!r} must be a code such as 'de' or 'pt_BR'")
    if src_lang == tgt_lang:
        raise ConfigError(f"source and target language are both {src_lang!r}")
    if max_len < 1:
        raise ConfigError(f"max_len must be at least 1, got {max_len}")
    names = ["train", "valid"]
    for prefix in test_prefixes:
        if prefix.name in names:
            raise ConfigError(
                f"test set {prefix} would be written as {prefix.name}.pt, which another split "
                "already uses; rename its files"
            )
        names.append(prefix.name)


def _train_tokenizers(
    train: _Split, vocab_size: int, separate_vocab: bool, model_type: str
) -> tuple[Tokenizer, Tokenizer]:
    """Trains one joint model on both sides, or one model per side."""
    if not separate_vocab:
        logger.info("training a joint %s sentencepiece model (%d pieces)", model_type, vocab_size)
        joint = Tokenizer.from_bytes(
            train_sentencepiece(train.src_lines + train.tgt_lines, vocab_size, model_type)
        )
        return joint, joint
    logger.info("training two %s sentencepiece models (%d pieces)", model_type, vocab_size)
    src = Tokenizer.from_bytes(train_sentencepiece(train.src_lines, vocab_size, model_type))
    tgt = Tokenizer.from_bytes(train_sentencepiece(train.tgt_lines, vocab_size, model_type))
    return src, tgt


@dataclass
class _Encoded:
    """A split ready to write: encoded pairs, the kept text lines and the split's numbers."""

    data: EncodedSplit
    src_lines: list[str]
    tgt_lines: list[str]
    summary: SplitSummary


def _encode_split(
    split: _Split, src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int | None
) -> _Encoded:
    """Encodes a split and drops pairs with more than ``max_len`` tokens on a side (if given)."""
    src_ids = src_tok.encode_batch(split.src_lines)
    tgt_ids = tgt_tok.encode_batch(split.tgt_lines)
    keep = [
        max_len is None or (len(s) <= max_len and len(t) <= max_len)
        for s, t in zip(src_ids, tgt_ids, strict=True)
    ]
    if not any(keep):
        raise DataError(
            f"{split.files}: all {len(keep)} non-empty pairs are longer than max_len={max_len} "
            "tokens; raise max_len"
        )

    def kept(items: list[Any]) -> list[Any]:
        return [item for item, k in zip(items, keep, strict=True) if k]

    src_ids, tgt_ids = kept(src_ids), kept(tgt_ids)
    src_lengths = [len(ids) for ids in src_ids]
    tgt_lengths = [len(ids) for ids in tgt_ids]
    summary = SplitSummary(
        name=split.name,
        pairs_read=split.pairs_read,
        pairs_kept=len(src_ids),
        dropped_empty=split.pairs_read - len(split.src_lines),
        dropped_too_long=len(keep) - len(src_ids),
        src_tokens=sum(src_lengths),
        tgt_tokens=sum(tgt_lengths),
        src_lengths=LengthStats.of(src_lengths),
        tgt_lengths=LengthStats.of(tgt_lengths),
        normalized=split.normalized,
    )
    data = EncodedSplit.from_ids(src_ids, tgt_ids)
    return _Encoded(data, kept(split.src_lines), kept(split.tgt_lines), summary)


def _write_text_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def preprocess(
    src_lang: str,
    tgt_lang: str,
    train_prefix: Path,
    valid_prefix: Path,
    out_dir: Path,
    vocab_size: int = 8000,
    separate_vocab: bool = False,
    model_type: str = "unigram",
    max_len: int = 100,
    test_prefixes: Sequence[Path] = (),
) -> PreprocessSummary:
    """Cleans, filters and encodes a parallel corpus into a data folder (see module docstring).

    Files are found fairseq style: ``train_prefix=D/train`` with ``src_lang="de"`` reads
    ``D/train.de`` and ``D/train.en``. Every split drops pairs with a side that is empty after
    cleaning; the train split also drops pairs with more than ``max_len`` tokens on a side
    (counted in tokens of the model trained on the train split, after empty pairs are dropped).

    Args:
        src_lang: Source language code, the source files' extension.
        tgt_lang: Target language code, the target files' extension.
        train_prefix: Path of the training files without the language extension.
        valid_prefix: Path of the validation files without the language extension.
        out_dir: Data folder to create or overwrite.
        vocab_size: Requested pieces per sentencepiece model; a small corpus may give fewer.
        separate_vocab: Train one model per language instead of one joint model.
        model_type: ``"unigram"`` or ``"bpe"``.
        max_len: Longest training sentence kept, in tokens (bos/eos not counted).
        test_prefixes: Test sets, each written as ``<basename>.pt``, ``.src`` and ``.ref``.

    Returns:
        The numbers written to ``summary.txt``.

    Raises:
        ConfigError: Invalid languages, sizes, model type or clashing test set names.
        DataError: Unreadable or misaligned files, or a split with no usable pair left.
    """
    out_dir, test_prefixes = Path(out_dir), [Path(p) for p in test_prefixes]
    _check_args(src_lang, tgt_lang, max_len, test_prefixes)
    named = [("train", Path(train_prefix)), ("valid", Path(valid_prefix))]
    named += [(prefix.name, prefix) for prefix in test_prefixes]
    splits = [_read_split(name, prefix, src_lang, tgt_lang) for name, prefix in named]
    src_tok, tgt_tok = _train_tokenizers(splits[0], vocab_size, separate_vocab, model_type)

    encoded = []
    for split in splits:
        logger.info("encoding %s", split.name)
        encoded.append(
            _encode_split(split, src_tok, tgt_tok, max_len if split.name == "train" else None)
        )
    summary, meta = _describe(
        out_dir, src_lang, tgt_lang, separate_vocab, model_type, vocab_size, max_len,
        src_tok, tgt_tok, encoded,
    )  # fmt: skip
    _write_folder(out_dir, meta, src_tok, tgt_tok, encoded, summary.to_text())
    return summary


def _describe(
    out_dir: Path,
    src_lang: str,
    tgt_lang: str,
    separate_vocab: bool,
    model_type: str,
    vocab_size: int,
    max_len: int,
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    encoded: list[_Encoded],
) -> tuple[PreprocessSummary, dict[str, Any]]:
    """The summary a preprocess run reports and the data folder's meta record."""
    summary = PreprocessSummary(
        out_dir=out_dir,
        src_lang=src_lang,
        tgt_lang=tgt_lang,
        joint=not separate_vocab,
        model_type=model_type,
        requested_vocab_size=vocab_size,
        src_vocab_size=src_tok.vocab_size,
        tgt_vocab_size=tgt_tok.vocab_size,
        max_len=max_len,
        splits=tuple(e.summary for e in encoded),
    )
    if separate_vocab:
        src_spm, tgt_spm = f"spm.{src_lang}.model", f"spm.{tgt_lang}.model"
    else:
        src_spm = tgt_spm = "spm.model"
    meta = {
        "format_version": FORMAT_VERSION,
        "src_lang": src_lang,
        "tgt_lang": tgt_lang,
        "joint": not separate_vocab,
        "src_spm": src_spm,
        "tgt_spm": tgt_spm,
        "src_vocab_size": src_tok.vocab_size,
        "tgt_vocab_size": tgt_tok.vocab_size,
        "requested_vocab_size": vocab_size,
        "model_type": model_type,
        "max_len": max_len,
        "splits": [e.summary.name for e in encoded],
    }
    return summary, meta


def _write_folder(
    out_dir: Path,
    meta: dict[str, Any],
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    encoded: list[_Encoded],
    summary_text: str,
) -> None:
    """Writes every file of the data folder, ``meta.json`` last (removed first if present)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / META_FILE).unlink(missing_ok=True)
        src_tok.save(out_dir / meta["src_spm"])
        tgt_tok.save(out_dir / meta["tgt_spm"])
        for e in encoded:
            name = e.summary.name
            e.data.save(out_dir / f"{name}.pt")
            if name != "train":
                _write_text_lines(out_dir / f"{name}.src", e.src_lines)
                _write_text_lines(out_dir / f"{name}.ref", e.tgt_lines)
        (out_dir / SUMMARY_FILE).write_text(summary_text, encoding="utf-8")
        tmp = out_dir / f"{META_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out_dir / META_FILE)
    except OSError as err:
        raise DataError(
            f"{err.filename or out_dir}: cannot write ({err.strerror or err})"
        ) from None
