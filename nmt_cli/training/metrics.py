"""RUN/metrics.jsonl: one JSON row per progress report and per validation, appended (read by
`nmt plot`).

Every `train.log_every` steps a training row (`step`, `minutes`, `train_loss`, `lr`,
`tokens_per_s`), so the loss is a curve; after each validation a validation row, the same keys
plus `valid_ppl` and `valid_bleu` (a validation row is one with `valid_bleu`). Every row is
strict JSON: a value that is missing or not finite (no training loss reported yet, a diverging
loss) is written as `null`, never as the `NaN` that JSON does not know.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nmt_cli.errors import NmtError
from nmt_cli.training.validator import ValidMetrics


def _finite(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None and math.isfinite(value) else None


class MetricsLog:
    """Appends training and validation rows to a metrics.jsonl file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def training(
        self, step: int, elapsed: float, train_loss: float | None, lr: float, tokens_per_s: float
    ) -> None:
        """Append the row of one progress report (arguments as for `validation`).

        Raises:
            NmtError: the file cannot be written.
        """
        self._append(
            {
                "step": step,
                "minutes": round(elapsed / 60, 3),
                "train_loss": _finite(train_loss, 4),
                "lr": lr,
                "tokens_per_s": round(tokens_per_s, 1),
            }
        )

    def validation(
        self,
        step: int,
        elapsed: float,
        train_loss: float | None,
        metrics: ValidMetrics,
        lr: float,
        tokens_per_s: float,
    ) -> None:
        """Append the row of one validation.

        Args:
            step: the update the model was validated after.
            elapsed: the run's wall-clock seconds so far.
            train_loss: the training loss per target token at the last progress line.
            metrics: the validation's perplexity and BLEU.
            lr: the learning rate of the next update.
            tokens_per_s: target tokens per second of training so far.

        Raises:
            NmtError: the file cannot be written.
        """
        row = {
            "step": step,
            "minutes": round(elapsed / 60, 3),
            "train_loss": _finite(train_loss, 4),
            "valid_ppl": _finite(metrics.ppl, 3),
            "valid_bleu": _finite(metrics.bleu, 2),
            "lr": lr,
            "tokens_per_s": round(tokens_per_s, 1),
        }
        self._append(row)

    def _append(self, row: dict[str, float | int | None]) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, allow_nan=False) + "\n")
        except OSError as e:
            raise NmtError(f"{self.path}: cannot write ({e.strerror or e})") from None
