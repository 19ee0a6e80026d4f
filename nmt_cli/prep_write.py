"""Pass 3 of ``nmt preprocess``: encode the kept pairs and write the data folder, marker last.

An error while writing (a full disk, above all) leaves the folder without its marker
``meta.json``, and the message names the folder: it is never taken for a complete one.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from nmt_cli.encoded import FORMAT_VERSION, META_FILE, SplitWriter, id_dtype
from nmt_cli.errors import DataError
from nmt_cli.prep_chunks import Workers
from nmt_cli.prep_scan import Options, Scanned, marked_chunks, progress
from nmt_cli.prep_summary import CorpusCount, Drops, LengthStats, PreprocessSummary, SplitSummary
from nmt_cli.prep_worker import KEEP, EncodeOptions, EncodeResult, encode_job
from nmt_cli.tokenizer import Tokenizer

SUMMARY_FILE = "summary.txt"


def write_folder(
    summary: PreprocessSummary,
    scanned: Sequence[Scanned],
    tokenizers: tuple[Tokenizer, Tokenizer],
    options: Options,
    workers: Workers,
) -> PreprocessSummary:
    """Encodes every split into ``summary.out_dir``; returns the summary with its splits."""
    out_dir = summary.out_dir
    files = {"src": f"spm.{summary.src_lang}.model", "tgt": f"spm.{summary.tgt_lang}.model"}
    if summary.joint:
        files = {"src": "spm.model", "tgt": "spm.model"}
    dtypes = (id_dtype(tokenizers[0].vocab_size), id_dtype(tokenizers[1].vocab_size))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / META_FILE).unlink(missing_ok=True)  # incomplete from here until rewritten
        tokenizers[0].save(out_dir / files["src"])
        tokenizers[1].save(out_dir / files["tgt"])
        models = (tokenizers[0].model_bytes, tokenizers[1].model_bytes)
        splits = tuple(
            _write_split(out_dir, split, dtypes, models, summary, options, workers)
            for split in scanned
        )
        summary = dataclasses.replace(summary, splits=splits)
        (out_dir / SUMMARY_FILE).write_text(summary.to_text(), encoding="utf-8")
        _write_marker(out_dir, _meta(summary, files, dtypes, options))
    except OSError as err:
        full = err.errno == errno.ENOSPC
        raise DataError(
            f"{out_dir}: {'disk full' if full else 'cannot write'} "
            f"({err.filename or ''}{': ' if err.filename else ''}{err.strerror or err}); "
            "the folder is incomplete (not marked complete): "
            f"{'free space' if full else 'fix this'} and run nmt preprocess again"
        ) from None
    return summary


class _Texts:
    """The ``.src``/``.ref`` text files of a valid or test split (or nothing, for train)."""

    def __init__(self, out_dir: Path, name: str, enabled: bool) -> None:
        self.files: list[IO[str]] = []
        if enabled:
            for suffix in ("src", "ref"):
                path = out_dir / f"{name}.{suffix}"
                self.files.append(open(path, "w", encoding="utf-8"))  # noqa: SIM115

    def write(self, result: EncodeResult) -> None:
        if result.text is not None:
            for file, lines in zip(self.files, result.text, strict=True):
                file.write("".join(f"{line}\n" for line in lines))

    def close(self) -> None:
        for file in self.files:
            file.close()


def _write_split(
    out_dir: Path,
    split: Scanned,
    dtypes: tuple[np.dtype, np.dtype],
    models: tuple[bytes, bytes],
    summary: PreprocessSummary,
    options: Options,
    workers: Workers,
) -> SplitSummary:
    """Encodes and writes one split; counts what the length filters dropped."""
    train = split.name == "train"
    encode = EncodeOptions(
        max_len=summary.max_len if train else None,
        max_ratio=options.max_ratio if train else None,
        text=not train,
        dtypes=(dtypes[0].name, dtypes[1].name),
        models=models,
    )
    drops, histograms = split.drops(), [np.zeros(1, np.int64), np.zeros(1, np.int64)]
    kept = {id(c): 0 for c in split.corpora}
    status = np.concatenate(split.status)
    writer, texts = SplitWriter(out_dir, split.name, dtypes), _Texts(out_dir, split.name, not train)
    jobs = ((chunk, encode) for chunk in marked_chunks(split, status == KEEP))
    try:
        with progress(f"encode {split.name}", len(status)) as bar:
            for (chunk, _), result in workers.map(encode_job, jobs):
                writer.append(result.ids, result.lengths)
                texts.write(result)
                for k in (0, 1):
                    histograms[k] = _add_counts(histograms[k], result.lengths[k])
                drops.too_long += result.too_long
                drops.over_ratio += result.over_ratio
                kept[id(chunk.corpus)] += len(result.lengths[0])
                bar.update(len(chunk.src))
    finally:
        writer.close(sync=True)
        texts.close()
    if writer.pairs == 0:
        raise DataError(_nothing_left(split, drops, summary.max_len))
    return SplitSummary(
        name=split.name,
        pairs_read=len(status),
        pairs_kept=writer.pairs,
        drops=drops,
        src_tokens=int(histograms[0] @ np.arange(len(histograms[0]))),
        tgt_tokens=int(histograms[1] @ np.arange(len(histograms[1]))),
        src_lengths=LengthStats.of_counts(histograms[0]),
        tgt_lengths=LengthStats.of_counts(histograms[1]),
        normalized=split.normalized,
        corpora=tuple(
            CorpusCount(c.prefix, len(s), kept[id(c)])
            for c, s in zip(split.corpora, split.status, strict=True)
        ),
    )


def _add_counts(histogram: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    counts = np.bincount(lengths, minlength=len(histogram))
    counts[: len(histogram)] += histogram
    return counts


def _nothing_left(split: Scanned, drops: Drops, max_len: int) -> str:
    files = split.corpora[0].files if len(split.corpora) == 1 else f"the {split.name} corpora"
    usable = sum(int((s == KEEP).sum()) for s in split.status)
    if drops.over_ratio == 0:
        return (
            f"{files}: all {usable} non-empty pairs are longer than max_len={max_len} "
            "tokens; raise max_len"
        )
    return (
        f"{files}: no pair left of {usable}: {drops.too_long} longer than max_len={max_len}, "
        f"{drops.over_ratio} over the length ratio; raise max_len or max_ratio"
    )


def _meta(
    summary: PreprocessSummary,
    files: dict[str, str],
    dtypes: tuple[np.dtype, np.dtype],
    options: Options,
) -> dict[str, Any]:
    """The data folder's ``meta.json`` record."""
    return {
        "format_version": FORMAT_VERSION,
        "src_lang": summary.src_lang,
        "tgt_lang": summary.tgt_lang,
        "joint": summary.joint,
        "src_spm": files["src"],
        "tgt_spm": files["tgt"],
        "src_vocab_size": summary.src_vocab_size,
        "tgt_vocab_size": summary.tgt_vocab_size,
        "requested_vocab_size": summary.requested_vocab_size,
        "model_type": summary.model_type,
        "max_len": summary.max_len,
        "splits": [s.name for s in summary.splits],
        "encoded": {
            s.name: {
                "pairs": s.pairs_kept,
                "src_dtype": dtypes[0].name,
                "tgt_dtype": dtypes[1].name,
            }
            for s in summary.splits
        },
        "train_corpora": [str(c.prefix) for c in summary.splits[0].corpora],
        "filters": {
            "max_ratio": options.max_ratio,
            "dedup": options.dedup,
            "drop_copies": options.drop_copies,
            "skip_bad": options.skip_bad,
            "spm_sample": options.spm_sample,
            "seed": options.seed,
        },
    }


def _write_marker(out_dir: Path, meta: dict[str, Any]) -> None:
    """Writes ``meta.json`` atomically (a synced temporary file renamed over it)."""
    tmp = out_dir / f"{META_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as file:
        file.write(json.dumps(meta, indent=2) + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, out_dir / META_FILE)
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        folder = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
