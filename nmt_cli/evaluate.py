"""Corpus-level scoring with sacrebleu (BLEU, chrF, TER) on detokenized text, with signatures.

Scores use sacrebleu's default settings so that they equal what the `sacrebleu` command prints
for the same files; the signature printed with each score says exactly which settings those were.
Reading files is not done here: callers pass lines read with `nmt_cli.textio.read_lines`, whose
cleanup (CRLF, runs of whitespace) does not change these scores on ordinary text.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from json import dumps
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from nmt_cli.errors import DataError, NmtError
from nmt_cli.textio import read_lines, read_stream

METRICS = ("bleu", "chrf", "ter")

_METRIC_CLASSES: dict[str, type[Metric]] = {"bleu": BLEU, "chrf": CHRF, "ter": TER}


@dataclass(frozen=True)
class Score:
    """One corpus-level score.

    Attributes:
        name: metric key as given on the command line (`bleu`, `chrf` or `ter`).
        score: the score, unrounded (TER: lower is better; BLEU and chrF: higher is better).
        signature: sacrebleu's signature of the settings, e.g. `nrefs:1|case:mixed|...`.
        text: sacrebleu's formatted line, e.g. `BLEU = 35.12 66.1/42.0/29.3/20.4 (BP = ...)`.
    """

    name: str
    score: float
    signature: str
    text: str

    def to_dict(self) -> dict[str, float | str]:
        """Returns the JSON-ready value stored under this score's name by `format_scores`."""
        return {"score": self.score, "signature": self.signature, "text": self.text}


def score_corpus(
    hypotheses: Sequence[str],
    references: Sequence[str],
    metrics: Sequence[str] = ("bleu",),
    hyp_name: str | None = None,
    ref_name: str | None = None,
) -> list[Score]:
    """Scores detokenized hypotheses against one reference per segment.

    Args:
        hypotheses: one detokenized system output per segment.
        references: the reference for each segment, aligned with `hypotheses`.
        metrics: names from `METRICS`; scores come back in this order, repeats dropped.
        hyp_name: where the hypotheses came from (a file name), used in error messages.
        ref_name: where the references came from (a file name), used in error messages.

    Returns:
        One `Score` per distinct metric.

    Raises:
        NmtError: a metric name is unknown, or no metric is given.
        DataError: the line counts differ, or there is nothing to score.
    """
    names = list(dict.fromkeys(metrics))
    if not names:
        raise NmtError(f"no metric given; choose from {', '.join(METRICS)}")
    for name in names:
        if name not in _METRIC_CLASSES:
            close = difflib.get_close_matches(name, METRICS, n=1, cutoff=0.7)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise NmtError(f"unknown metric '{name}'{hint}; choose from {', '.join(METRICS)}")

    hyp_label = f"hypotheses ({hyp_name})" if hyp_name else "hypotheses"
    ref_label = ref_name or "the reference"
    if len(hypotheses) != len(references):
        raise DataError(
            f"{hyp_label} have {len(hypotheses)} lines but {ref_label} has {len(references)}"
        )
    if not hypotheses:
        raise DataError(f"nothing to score: {hyp_label} and {ref_label} are empty")

    scores = []
    for name in names:
        metric = _METRIC_CLASSES[name]()
        result = metric.corpus_score(list(hypotheses), [list(references)])
        scores.append(
            Score(
                name=name,
                score=float(result.score),
                signature=str(metric.get_signature()),
                text=str(result),
            )
        )
    return scores


def score_files(hypotheses: Path | None, references: Path, metrics: str = "bleu") -> list[Score]:
    """Scores a hypotheses file (stdin when None) against a references file, as `nmt eval` does.

    Args:
        hypotheses: detokenized output, one line per segment; None reads stdin.
        references: one reference per line.
        metrics: comma-separated names from `METRICS`.

    Raises:
        DataError: a file is unreadable, or see `score_corpus`.
        NmtError: see `score_corpus`.
    """
    refs = read_lines(references)
    # stdin is strict UTF-8 too: one rule for a file and a pipe
    hyps = read_lines(hypotheses) if hypotheses else read_stream(sys.stdin.buffer, "stdin")
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    return score_corpus(
        hyps, refs, names, hyp_name=str(hypotheses or "stdin"), ref_name=str(references)
    )


def format_scores(scores: Sequence[Score], json: bool = False) -> str:
    """Formats scores for the terminal or, with `json`, as one JSON object.

    Args:
        scores: as returned by `score_corpus`.
        json: emit `{"bleu": {"score": .., "signature": .., "text": ..}, ...}` on one line.

    Returns:
        The text, without a trailing newline. The human form has two lines per metric:
        sacrebleu's score line, then `signature: ...`.
    """
    if json:
        return dumps({s.name: s.to_dict() for s in scores})
    return "\n".join(f"{s.text}\nsignature: {s.signature}" for s in scores)
