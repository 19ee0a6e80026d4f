"""When training stops: max_steps, the time budget, a signal, or early stopping.

The time budget (`train.max_minutes`) covers validation too. A validation takes about as
long as the last one did, so the run counts as out of time once the elapsed time plus the
last validation's duration passes the budget: it then validates one last time and stops,
rather than starting a validation it cannot finish, or validating twice in a row.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from nmt_cli.config import TrainConfig
from nmt_cli.training.state import TrainState

log = logging.getLogger(__name__)


class SignalCatcher:
    """SIGINT and SIGTERM ask training to save a checkpoint and stop; a second one aborts."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None

    @contextmanager
    def installed(self) -> Iterator[SignalCatcher]:
        """Catch the signals for the duration of the block (the old handlers come back)."""
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received:  # second signal: give up at once
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)
        log.warning("%s received: saving a checkpoint after this step", self.received.name)


class StopPolicy:
    """Decides, after each step, whether to validate now and whether to stop.

    It reads the run's step, clock and patience from the `TrainState`; of its own it keeps
    only how long the last validation took.
    """

    def __init__(self, config: TrainConfig, state: TrainState) -> None:
        self.max_steps, self.valid_every = config.max_steps, config.valid_every
        self.patience = config.patience  # 0: never stop early
        self.budget = config.max_minutes * 60  # seconds of wall clock; 0: none
        self.state = state
        self.valid_seconds = 0.0  # how long the last validation took
        self.signals = SignalCatcher()

    def out_of_time(self) -> bool:
        """Whether the budget would be spent by the end of another validation."""
        return self.budget > 0 and self.state.elapsed() + self.valid_seconds > self.budget

    def validate_now(self, out_of_time: bool) -> bool:
        """Validate after this step: on schedule, at the last step, or before time runs out."""
        step = self.state.step
        return step % self.valid_every == 0 or out_of_time or step == self.max_steps

    @contextmanager
    def timing_validation(self) -> Iterator[None]:
        """Measure the validation made in the block (the next one is expected to take as long)."""
        start = self.state.clock()
        yield
        self.valid_seconds = self.state.clock() - start

    def early_stop(self) -> bool:
        """Whether `patience` validations in a row failed to improve on the best score."""
        return self.patience > 0 and self.state.bad_validations >= self.patience
