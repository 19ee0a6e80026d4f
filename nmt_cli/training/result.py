"""The result of a training run: the one line that reports it, and the warning for a run too
short to be useful."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nmt_cli.checkpoint import metric_from_score
from nmt_cli.distributed import Dist
from nmt_cli.training.state import TrainState
from nmt_cli.training.stopping import too_few_steps

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    steps: int
    best_score: float | None
    minutes: float
    tokens_per_second: float  # of rank 0 when there are several ranks
    stopped_because: str  # "max_steps", "max_minutes" or "early stopping"
    rank: int = 0
    ranks: int = 1

    def summary(self, stop_metric: str) -> str:
        """The line `nmt train` prints at the end (`stop_metric` names the best score)."""
        best = "n/a"
        if self.best_score is not None:  # scores are higher-is-better: -ppl for perplexity
            best = f"{metric_from_score(self.best_score, stop_metric):.2f}"
        per_rank = f" per rank ({self.ranks} ranks)" if self.ranks > 1 else ""
        return (
            f"steps {self.steps:,} ({self.stopped_because}), {self.minutes:.1f} min, "
            f"{self.tokens_per_second:,.0f} target tokens/s{per_rank}, "
            f"best valid {stop_metric} {best}"
        )


def finish(
    state: TrainState, stopped_because: str, dist: Dist | None, stop_metric: str
) -> TrainResult:
    """The result of a run that stopped; warns when it is too short to be useful.

    The summary goes to train.log only: on the console, `nmt train` prints it (stdout), once.
    """
    result = TrainResult(
        steps=state.step,
        best_score=state.best_score,
        minutes=state.elapsed() / 60,
        tokens_per_second=state.tokens_per_second(),
        stopped_because=stopped_because,
        rank=0 if dist is None else dist.rank,
        ranks=1 if dist is None else dist.world_size,
    )
    warning = too_few_steps(result.steps, stopped_because)
    if warning is not None and result.rank == 0:
        log.warning("%s", warning)
    log.info("done: %s", result.summary(stop_metric), extra={"console": False})
    return result
