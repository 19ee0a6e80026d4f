"""Attention alignments and JSON output of translations, as JSON lines.

An alignment record is one input line's best translation seen through its attention:

    {"line": 3, "source": ["▁Ein", "▁Hund"], "target": ["▁A", "▁dog", "</s>"],
     "weights": [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]}

`weights` has one row per target piece (eos included) and one column per source piece, in
input order (a reversed source is flipped back). An empty input line gives empty lists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
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


def parse_lines(spec: str) -> set[int]:
    """`"1,2,5-8"` -> {1, 2, 5, 6, 7, 8} (1-based line numbers)."""
    chosen: set[int] = set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        first, dash, last = item.partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise ConfigError(f"--lines: {item!r} is not a line number or range like 5-8") from None
        if low < 1 or high < low:
            raise ConfigError(f"--lines: {item!r} must be positive and ascending (like 5-8)")
        chosen.update(range(low, high + 1))
    if not chosen:
        raise ConfigError("--lines: no line numbers given (example: --lines 1,2,5-8)")
    return chosen
