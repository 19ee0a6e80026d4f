"""Score a stream of pairs, as `nmt score` does: pairs in, one record per pair out, in order.

Pairs come from two line-aligned files (`read_file_pairs`) or from tab-separated lines
(`read_tab_pairs`), in pools of many batches: each pool is scored in length-sorted batches and
written in input order, then flushed.

Output formats (one pair gives one line):
- text: `LOG_PROB<TAB>AVG_LOG_PROB<TAB>TOKENS` (the sum of the target's token log-probs, eos
  included; that sum per token; the token count). A pair with an empty source is not scored:
  `-<TAB>-<TAB>0`.
- json: {"line", "log_prob", "avg_log_prob", "tokens", "token_log_probs", "pieces"}; a pair
  not scored has nulls, empty lists and "skipped": the reason.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest
from time import perf_counter
from typing import IO, BinaryIO

from nmt_cli.errors import DataError
from nmt_cli.scoring import PairScore, Scorer
from nmt_cli.translate import POOL_BATCHES

log = logging.getLogger(__name__)

NOT_SCORED = "-\t-\t0\n"


def _decode(raw: bytes, where: str, line: int) -> str:
    """UTF-8 -> str; invalid bytes become U+FFFD, with a warning naming file and line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        log.warning("%s:%d: invalid UTF-8; replaced", where, line)
        return raw.decode("utf-8", errors="replace")


def read_file_pairs(src: BinaryIO, tgt: BinaryIO) -> Iterator[tuple[str, str]]:
    """The pairs of two line-aligned files, read in step.

    Raises:
        DataError: one file has more lines than the other (raised when the shorter one ends,
            after every complete pair was yielded).
    """
    for line, (src_raw, tgt_raw) in enumerate(zip_longest(src, tgt), start=1):
        if src_raw is None or tgt_raw is None:
            longer, shorter = (src, tgt) if tgt_raw is None else (tgt, src)
            raise DataError(
                f"{longer.name} has more lines than {shorter.name} ({line - 1}); "
                "the files must have one line per pair"
            )
        yield (
            _decode(src_raw.removesuffix(b"\n"), src.name, line),
            _decode(tgt_raw.removesuffix(b"\n"), tgt.name, line),
        )


def read_tab_pairs(stream: BinaryIO, where: str = "stdin") -> Iterator[tuple[str, str]]:
    """The pairs of `SOURCE<TAB>TARGET` lines; an empty line is an empty pair.

    Raises:
        DataError: a non-empty line without a tab (names the line).
    """
    for line, raw in enumerate(stream, start=1):
        text = _decode(raw.removesuffix(b"\n").removesuffix(b"\r"), where, line)
        if "\t" not in text and text.strip():
            raise DataError(f"{where}:{line}: no tab; expected SOURCE<TAB>TARGET")
        src, _, tgt = text.partition("\t")
        yield src, tgt


@dataclass
class ScoreStats:
    """What a stream scored.

    Attributes:
        pairs: pairs read (and records written).
        skipped: pairs not scored (an empty source).
        tokens: target tokens scored, eos included.
        log_prob: their summed log-probability.
        seconds: wall-clock time from the first read to the last write.
    """

    pairs: int = 0
    skipped: int = 0
    tokens: int = 0
    log_prob: float = 0.0
    seconds: float = 0.0

    def add(self, score: PairScore) -> None:
        self.pairs += 1
        self.skipped += score.skipped is not None
        self.tokens += score.tokens
        self.log_prob += score.log_prob

    @property
    def perplexity(self) -> float:
        """exp(-log_prob / tokens) over every scored token (nan when none was scored)."""
        return math.exp(-self.log_prob / self.tokens) if self.tokens else math.nan

    def summary(self) -> str:
        """The closing line `nmt score` logs."""
        skipped = f" ({self.skipped} with an empty source not scored)" if self.skipped else ""
        rate = f", {self.pairs / self.seconds:,.1f} pairs/s" if self.seconds > 0 else ""
        average = self.log_prob / self.tokens if self.tokens else math.nan
        return (
            f"scored {self.pairs - self.skipped:,} of {self.pairs:,} pairs{skipped}: "
            f"{self.tokens:,} target tokens, corpus perplexity {self.perplexity:.4f} "
            f"(log-prob per token {average:.4f}), in {self.seconds:.2f} s{rate}"
        )


def format_score(line: int, score: PairScore, as_json: bool) -> str:
    """The output line for one pair (see the module docstring), newline included."""
    if as_json:
        record: dict[str, object] = {
            "line": line,
            "log_prob": None if score.skipped else round(score.log_prob, 6),
            "avg_log_prob": None if score.skipped else round(score.average, 6),
            "tokens": score.tokens,
            "token_log_probs": [round(x, 6) for x in score.token_log_probs],
            "pieces": score.pieces,
        }
        if score.skipped:
            record["skipped"] = score.skipped
        return json.dumps(record, ensure_ascii=False) + "\n"
    if score.skipped:
        return NOT_SCORED
    return f"{score.log_prob:.4f}\t{score.average:.4f}\t{score.tokens}\n"


def _pools(pairs: Iterator[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    """Lists of up to `size` pairs. A reader's error comes after the pairs read before it,
    so that every complete pair is scored and written first."""
    pool: list[tuple[str, str]] = []
    try:
        for pair in pairs:
            pool.append(pair)
            if len(pool) == size:
                yield pool
                pool = []
    except DataError:
        if pool:
            yield pool
        raise
    if pool:
        yield pool


def score_stream(
    scorer: Scorer,
    pairs: Iterator[tuple[str, str]],
    writer: IO[str],
    as_json: bool = False,
    batch_size: int | None = None,
) -> ScoreStats:
    """Score every pair to `writer`, one line per pair in input order, flushed per pool.

    Args:
        scorer: the loaded model.
        pairs: (source, target) text pairs, e.g. from `read_file_pairs` or `read_tab_pairs`.
        writer: where the records go.
        as_json: JSON lines instead of the text layout.
        batch_size: pairs per batch (default: the model's decode.batch_size).

    Returns:
        The counts and the summed log-probability (see `ScoreStats.summary`).
    """
    size = batch_size or scorer.translator.decode.batch_size
    stats, started, line = ScoreStats(), perf_counter(), 1
    for pool in _pools(pairs, size * POOL_BATCHES):
        for offset, score in enumerate(scorer.score(pool, size)):
            stats.add(score)
            writer.write(format_score(line + offset, score, as_json))
        writer.flush()
        line += len(pool)
    stats.seconds = perf_counter() - started
    return stats


def log_summary(stats: ScoreStats) -> None:
    """Log the closing line of `nmt score` (at INFO, on stderr, as `nmt translate` does)."""
    log.info("%s", stats.summary())
