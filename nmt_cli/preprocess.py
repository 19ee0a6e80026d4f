"""Validate and filter parallel text, train sentencepiece, and write the encoded corpus.

The work streams: the raw files are read in chunks of lines, three times, never whole:

1. scan: decode, clean and check every pair, giving it a status (kept, empty, undecodable,
   a copy of its source, a duplicate); a byte a pair and, with ``dedup``, an 8-byte hash;
2. sample: the cleaned text of at most ``spm_sample`` sentences (seeded) trains sentencepiece;
3. encode: the kept pairs are cleaned again, encoded and appended to the data folder.

Chunks go to ``workers`` processes (``nmt_cli.prep_worker``) and come back in order, so the
output does not depend on the number of workers. The folder it writes is described in
``nmt_cli.corpus``; ``summary.txt`` is ``PreprocessSummary.to_text``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path

from nmt_cli.encoded import META_FILE
from nmt_cli.errors import ConfigError, DataError
from nmt_cli.hints import check_prefix
from nmt_cli.prep_chunks import Corpus, Workers
from nmt_cli.prep_scan import Options, Scanned, mark_duplicates, sample_text, scan
from nmt_cli.prep_summary import (
    CorpusCount,
    Drops,
    LengthStats,
    PreprocessSummary,
    SplitSummary,
)
from nmt_cli.prep_write import SUMMARY_FILE, write_folder
from nmt_cli.protect import PLACEHOLDERS
from nmt_cli.textio import same_file
from nmt_cli.tokenizer import Tokenizer, train_sentencepiece
from nmt_cli.tokenizer_source import vocabulary_of

__all__ = [
    "SUMMARY_FILE", "CorpusCount", "Drops", "LengthStats", "Options", "PreprocessSummary",
    "SplitSummary", "preprocess",
]  # fmt: skip

logger = logging.getLogger(__name__)

_LANG = re.compile(r"[A-Za-z0-9_-]+")


def preprocess(
    src_lang: str,
    tgt_lang: str,
    train_prefix: Path | Sequence[Path],
    valid_prefix: Path,
    out_dir: Path,
    vocab_size: int = 8000,
    separate_vocab: bool = False,
    model_type: str = "unigram",
    max_len: int = 100,
    test_prefixes: Sequence[Path] = (),
    options: Options | None = None,
    tokenizer_from: Path | None = None,
) -> PreprocessSummary:
    """Cleans, filters and encodes a parallel corpus into a data folder (see module docstring).

    Files are found fairseq style: ``D/train`` with ``src_lang="de"`` reads ``D/train.de`` and
    ``D/train.en``; train prefixes are concatenated. Every split drops pairs with an empty side;
    train also those over ``max_len`` tokens on a side and what ``options`` asks.

    Args:
        src_lang: Source language code, the source files' extension.
        tgt_lang: Target language code, the target files' extension.
        train_prefix: Path(s) of the training files without the language extension.
        valid_prefix: Path of the validation files without the language extension.
        out_dir: Data folder to create or overwrite.
        vocab_size: Requested pieces per sentencepiece model; a small corpus may give fewer.
        separate_vocab: Train one model per language instead of one joint model.
        model_type: ``"unigram"`` or ``"bpe"``.
        max_len: Longest training sentence kept, in tokens (bos/eos not counted).
        test_prefixes: Test sets, each written as split ``<basename>`` with ``.src``/``.ref``.
        options: Workers, sample, filters, bad lines, protect (default ``Options()``: 1 worker).
        tokenizer_from: Encode with this model's tokenizers instead of training new ones.

    Returns:
        The numbers written to ``summary.txt``.

    Raises:
        ConfigError: Invalid languages, sizes, model type, clashing names or options.
        DataError: Unreadable or misaligned files, no usable pair left, or an unwritable folder.
    """
    options = options or Options()
    trains = [train_prefix] if isinstance(train_prefix, (str, Path)) else train_prefix
    out_dir, test_prefixes = Path(out_dir), [Path(p) for p in test_prefixes]
    _check_args(src_lang, tgt_lang, max_len, test_prefixes, options)
    named = [("train", trains), ("valid", [valid_prefix]), *((p.name, [p]) for p in test_prefixes)]
    splits = _corpora(named, src_lang, tgt_lang, options)
    _check_outputs(out_dir, splits)
    with Workers(options.workers) as workers:
        scanned = scan(splits, options, workers)
        if options.dedup:
            mark_duplicates(scanned[0])
        tokenizers, separate_vocab, vocab_size, model_type = _tokenizers(
            scanned[0], tokenizer_from, vocab_size, separate_vocab, model_type, options, workers
        )
        return write_folder(
            _summary(out_dir, src_lang, tgt_lang, separate_vocab, model_type, vocab_size,
                     max_len, tokenizers, options),
            scanned, tokenizers, options, workers,
        )  # fmt: skip


def _corpora(
    named: Sequence[tuple[str, Sequence[Path]]], src_lang: str, tgt_lang: str, options: Options
) -> list[tuple[str, list[Corpus]]]:
    """Each split's corpora; with ``options.protect``, train's and valid's pairs get copy-through
    placeholders (test sets stay raw text)."""
    langs = (src_lang, tgt_lang)
    for name, prefixes in named:
        for prefix in prefixes:  # `--train D/train.de`: say the flag takes a prefix
            check_prefix(name if name in ("train", "valid") else "test", Path(prefix), langs)
    protected = ("train", "valid") if options.protect else ()
    return [
        (name, [Corpus.of(Path(p), src_lang, tgt_lang, name in protected) for p in ps])
        for name, ps in named
    ]


def _tokenizers(
    train: Scanned,
    tokenizer_from: Path | None,
    vocab_size: int,
    separate_vocab: bool,
    model_type: str,
    options: Options,
    workers: Workers,
) -> tuple[tuple[Tokenizer, Tokenizer], bool, int, str]:
    """The tokenizers to encode with: trained on a sample of train, or an existing model's
    (``tokenizer_from``, to fine-tune that model on this corpus); and the vocabulary's
    separate_vocab, vocab_size and model_type as the summary shows them."""
    if tokenizer_from is not None:
        src, tgt, separate, size, kind = vocabulary_of(tokenizer_from)
        return (src, tgt), separate, size, kind
    trained = _train_tokenizers(train, vocab_size, separate_vocab, model_type, options, workers)
    return trained, separate_vocab, vocab_size, model_type


def _summary(
    out_dir: Path,
    src_lang: str,
    tgt_lang: str,
    separate_vocab: bool,
    model_type: str,
    vocab_size: int,
    max_len: int,
    tokenizers: tuple[Tokenizer, Tokenizer],
    options: Options,
) -> PreprocessSummary:
    """The run's summary before any split is written."""
    src_tok, tgt_tok = tokenizers
    return PreprocessSummary(
        out_dir=out_dir,
        src_lang=src_lang,
        tgt_lang=tgt_lang,
        joint=not separate_vocab,
        model_type=model_type,
        requested_vocab_size=vocab_size,
        src_vocab_size=src_tok.vocab_size,
        tgt_vocab_size=tgt_tok.vocab_size,
        max_len=max_len,
        splits=(),
        max_ratio=options.max_ratio,
    )


def _check_args(
    src_lang: str, tgt_lang: str, max_len: int, test_prefixes: Sequence[Path], options: Options
) -> None:
    """Raises ConfigError for arguments that cannot work, before any file is read."""
    for lang in (src_lang, tgt_lang):
        if not _LANG.fullmatch(lang):
            raise ConfigError(f"language {lang!r} must be a code such as 'de' or 'pt_BR'")
    if src_lang == tgt_lang:
        raise ConfigError(f"source and target language are both {src_lang!r}")
    if max_len < 1:
        raise ConfigError(f"max_len must be at least 1, got {max_len}")
    options.check()
    names = ["train", "valid"]
    for prefix in test_prefixes:
        if prefix.name in names:
            raise ConfigError(
                f"test set {prefix} would be written as split {prefix.name!r}, which another "
                "split already uses; rename its files"
            )
        names.append(prefix.name)


def _check_outputs(out_dir: Path, splits: Sequence[tuple[str, list[Corpus]]]) -> None:
    """Refuses a data folder whose files would overwrite an input file (e.g. ``--tgt ref``
    with ``--out`` the corpus folder: ``valid.ref`` is both)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder")
    langs = {c.src_path.suffix for _, cs in splits for c in cs} | {
        c.tgt_path.suffix for _, cs in splits for c in cs
    }
    names = [META_FILE, f"{META_FILE}.tmp", SUMMARY_FILE, "spm.model"]
    names += [f"spm{lang}.model" for lang in langs]
    names += [f"{name}.{suffix}" for name, _ in splits[1:] for suffix in ("src", "ref")]
    inputs = [path for _, cs in splits for c in cs for path in (c.src_path, c.tgt_path)]
    for output in (out_dir / name for name in names):
        for source in inputs:
            if same_file(output, source):
                raise ConfigError(
                    f"{output}: is an input file and {out_dir} would overwrite it; "
                    "choose another --out folder"
                )


def _train_tokenizers(
    train: Scanned,
    vocab_size: int,
    separate_vocab: bool,
    model_type: str,
    options: Options,
    workers: Workers,
) -> tuple[Tokenizer, Tokenizer]:
    """Trains one joint model on both sides of a sample, or one model per side."""
    pairs = options.spm_sample if separate_vocab else max(options.spm_sample // 2, 1)
    symbols = PLACEHOLDERS if options.protect else ()  # each placeholder one piece
    src_text, tgt_text = sample_text(train, pairs, options.seed, workers)
    if not separate_vocab:
        logger.info("training a joint %s sentencepiece model (%d pieces)", model_type, vocab_size)
        joint = train_sentencepiece(
            chain(_drain(src_text), _drain(tgt_text)), vocab_size, model_type, symbols
        )
        tok = Tokenizer.from_bytes(joint)
        return tok, tok
    logger.info("training two %s sentencepiece models (%d pieces)", model_type, vocab_size)
    src = Tokenizer.from_bytes(
        train_sentencepiece(_drain(src_text), vocab_size, model_type, symbols)
    )
    tgt = Tokenizer.from_bytes(
        train_sentencepiece(_drain(tgt_text), vocab_size, model_type, symbols)
    )
    return src, tgt


def _drain(lines: list[str]) -> Iterator[str]:
    """Yields the lines in order while emptying the list, so that each string is freed once
    sentencepiece has copied it (the sample is not held twice)."""
    lines.reverse()
    while lines:
        yield lines.pop()
