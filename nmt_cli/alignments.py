"""Attention alignments and JSON output of translations, as JSON lines.

An alignment record is one input line's best translation seen through its attention:

    {"line": 3, "source": ["▁Ein", "▁Hund"], "target": ["▁A", "▁dog", "</s>"],
     "weights": [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]}

`weights` has one row per target piece (eos included) and one column per source piece, in
input order (a reversed source is flipped back). An empty input line gives empty lists.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmt_cli.errors import ConfigError, DataError

if TYPE_CHECKING:  # torch stays unimported for `nmt plot-attention`
    from nmt_cli.translate import Translation

EOS_PIECE = "</s>"
DIGITS = 4  # weights are rounded to this many decimals: files stay small, rows still sum to ~1


def alignment_record(line: int, translation: Translation) -> dict[str, Any]:
    """The alignment record of one input line (1-based `line`)."""
    if not translation.source:  # an empty input line: nothing was translated
        return {"line": line, "source": [], "target": [], "weights": []}
    if translation.attention is None:
        raise ConfigError("this model has no attention (model.attention: none): no alignments")
    weights = [[round(w, DIGITS) for w in row] for row in translation.attention.tolist()]
    return {
        "line": line,
        "source": translation.source,
        "target": [*translation.pieces, EOS_PIECE],
        "weights": weights,
    }


def json_record(
    line: int, hypotheses: Sequence[Translation], n_best: bool = False, with_attention: bool = False
) -> dict[str, Any]:
    """The `nmt translate --json` object for one input line.

    Args:
        line: the 1-based input line number.
        hypotheses: the line's hypotheses, best first.
        n_best: add an "n_best" list of every hypothesis (translation, score, pieces).
        with_attention: add the best hypothesis' alignment: "source", "target", "weights".
    """
    best = hypotheses[0]
    record: dict[str, Any] = {
        "line": line,
        "translation": best.text,
        "score": round(best.score, 6),
        "pieces": best.pieces,
    }
    if n_best:
        record["n_best"] = [
            {"translation": h.text, "score": round(h.score, 6), "pieces": h.pieces}
            for h in hypotheses
        ]
    if with_attention:
        record.update({k: v for k, v in alignment_record(line, best).items() if k != "line"})
    return record


def to_json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def read_alignments(path: Path) -> Iterator[dict[str, Any]]:
    """Read and check alignment records (from --alignments, or --json --with-attention).

    Raises:
        DataError: unreadable file, bad JSON, or a record whose shapes disagree (names the line).
    """
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    with handle:
        try:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    yield _check_record(path, number, text)
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None


def _check_record(path: Path, number: int, text: str) -> dict[str, Any]:
    where = f"{path}:{number}"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not JSON ({e.msg})") from None
    missing = (
        [k for k in ("line", "source", "target", "weights") if k not in record]
        if isinstance(record, dict)
        else ["an object"]
    )
    if missing:
        raise DataError(
            f"{where}: not an alignment record (no {', '.join(missing)}); "
            "write one with nmt translate --alignments FILE"
        )
    if not isinstance(record["line"], int) or record["line"] < 1:
        raise DataError(f'{where}: "line" must be a positive line number')
    weights, source, target = record["weights"], record["source"], record["target"]
    if not all(isinstance(x, list) for x in (weights, source, target)):
        raise DataError(f"{where}: source, target and weights must be lists")
    if len(weights) != len(target) or any(
        not isinstance(row, list)
        or len(row) != len(source)
        or not all(isinstance(w, (int, float)) and math.isfinite(w) for w in row)
        for row in weights
    ):
        raise DataError(
            f"{where}: weights must be {len(target)} rows (target pieces) of "
            f"{len(source)} numbers (source pieces)"
        )
    return record


@dataclass(frozen=True)
class LineSet:
    """1-based line numbers as sorted, disjoint, inclusive ranges (`--lines 1-1000000000` is
    one pair, never a billion numbers)."""

    ranges: tuple[tuple[int, int], ...]

    def __contains__(self, line: object) -> bool:
        i = bisect.bisect_right(self.ranges, (line, math.inf)) - 1 if isinstance(line, int) else -1
        return i >= 0 and self.ranges[i][0] <= line <= self.ranges[i][1]  # type: ignore[operator]

    def missing(self, seen: set[int], limit: int = 10) -> tuple[list[int], int]:
        """The first `limit` numbers not in `seen`, and how many are not (`seen` in self)."""
        total = sum(high - low + 1 for low, high in self.ranges) - len(seen)
        first: list[int] = []
        for low, high in self.ranges:
            line = low
            while line <= high and len(first) < limit:  # at most len(seen) + limit turns
                if line not in seen:
                    first.append(line)
                line += 1
        return first, total


def parse_lines(spec: str) -> LineSet:
    """`"1,2,5-8"` -> the lines {1, 2, 5, 6, 7, 8} (1-based), kept as ranges."""
    ranges: list[tuple[int, int]] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        first, dash, last = item.partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise ConfigError(
                f"--lines: {item[:40]!r} is not a line number or range like 5-8"
            ) from None
        if low < 1 or high < low:
            raise ConfigError(f"--lines: {item[:40]!r} must be positive and ascending (like 5-8)")
        ranges.append((low, high))
    if not ranges:
        raise ConfigError("--lines: no line numbers given (example: --lines 1,2,5-8)")
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return LineSet(tuple(merged))
