"""When training stops: max_steps, the time budget, a signal, or early stopping.

The time budget (`train.max_minutes`) is the wall clock a user plans with: the run's start
(loading the data, building the model), the steps, the validations and the last checkpoint
all fit in it. The run counts as out of time once the elapsed time plus a reserve passes the
budget: another step as long as the last one, a validation as long as the slowest so far
(one run's validations vary by 2x on a busy machine) and a save as long as the last one (before
the first of each, a guess from the training speed and the model's size), the last two with a
margin for a machine that gets busier. It then validates one last time and stops, rather than
starting a validation it cannot finish, or validating twice in a row. Should that validation
still run late, it is cut short (`ValidationCut`), so the checkpoint is saved within the budget
anyway.

A run that stops on its budget or on early stopping before `MIN_USEFUL_STEPS` updates gets a
warning (`too_few_steps`): a model trained so briefly is rarely of any use. A run that stops
at its own `max_steps` does not: that many steps was asked for.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from nmt_cli.config import TrainConfig
from nmt_cli.errors import ConfigError, TrainingInterrupted
from nmt_cli.training.state import TrainState

log = logging.getLogger(__name__)

# How much longer than the last one the next validation or save may take (a busier machine).
MARGIN = 1.25
# Before the first validation: seconds of validation per target token, in units of seconds of
# training per target token (the search decodes step by step, a slower path than training's).
VALID_COST = 3.0
# Before the first save: bytes per second a checkpoint is written at (a slow disk), after a
# second of fsyncs and renames.
SAVE_SPEED, SAVE_SECONDS = 50e6, 1.0
# Fewer updates than this, when the budget or early stopping ended the run, get a warning.
MIN_USEFUL_STEPS = 1000


class ValidationCut(Exception):
    """A validation stopped before its end.

    Attributes:
        reason: the signal's name ("SIGINT", "SIGTERM") or "max_minutes" (the budget ran out).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def too_few_steps(steps: int, stopped_because: str) -> str | None:
    """The warning for a run that ended too early to be useful, or None."""
    if stopped_because == "max_steps" or steps >= MIN_USEFUL_STEPS:
        return None
    remedy = {
        "max_minutes": "raise train.max_minutes and continue with --resume "
        "(the budget counts the whole run)",
        "early stopping": "validation stopped improving: check the learning rate and the data",
    }.get(stopped_because, "train longer")
    return (
        f"training ended after {steps:,} updates ({stopped_because}); a model usually needs "
        f"at least {MIN_USEFUL_STEPS:,} to be of use: {remedy}"
    )


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
    only how long the last step, validation and save took (what the budget must leave room
    for), and whether a signal came.
    """

    def __init__(
        self,
        config: TrainConfig,
        state: TrainState,
        valid_tokens: int = 0,
        checkpoint_bytes: int = 0,
    ) -> None:
        """Args:
        config: max_steps, valid_every, valid_beam, patience and max_minutes apply.
        state: the run's step, clock and patience.
        valid_tokens: target tokens of the valid split (guesses the first validation's time).
        checkpoint_bytes: about the size of a checkpoint (guesses the first save's time).
        """
        self.max_steps, self.valid_every = config.max_steps, config.valid_every
        self.patience = config.patience  # 0: never stop early
        self.budget = config.max_minutes * 60  # seconds of wall clock; 0: none
        self.state = state
        self.valid_work = valid_tokens * config.valid_beam
        self.valid_seconds: float | None = None  # how long the last validation took
        self.slowest_validation: float | None = None  # the longest one so far
        self.save_seconds = SAVE_SECONDS + checkpoint_bytes / SAVE_SPEED  # last save, or a guess
        self.step_seconds = 0.0  # how long the last step took
        self.step_tokens_per_second = 0.0  # the last step's target tokens per second
        self.last_mark = state.clock()  # the end of the last step, validation or save
        self.signals = SignalCatcher()

    def validation_estimate(self) -> float:
        """Seconds the next validation may take: as long as the slowest so far, or a guess."""
        if self.slowest_validation is not None:
            return self.slowest_validation
        speed = self.step_tokens_per_second
        return VALID_COST * self.valid_work / speed if speed else 0.0

    def reserve(self) -> float:
        """Seconds to keep at the end of the budget: a step, a validation and a save."""
        return self.step_seconds + MARGIN * (self.validation_estimate() + self.save_seconds)

    def step_done(self, tokens: int) -> None:
        """After each step: it trained on `tokens` target tokens (it took since the last mark)."""
        now = self.state.clock()
        self.step_seconds = now - self.last_mark
        self.step_tokens_per_second = tokens / max(self.step_seconds, 1e-9)
        self.last_mark = now

    def out_of_time(self) -> bool:
        """Whether another step, a validation and a save would no longer fit in the budget."""
        return self.budget > 0 and self.state.elapsed() + self.reserve() > self.budget

    def cut_validation(self) -> str | None:
        """During a validation: why to stop it now (a signal's name, "max_minutes"), or None."""
        if self.signals.received:
            return self.signals.received.name
        if self.budget > 0 and self.state.elapsed() + MARGIN * self.save_seconds > self.budget:
            return "max_minutes"
        return None

    def validate_now(self, out_of_time: bool) -> bool:
        """Validate after this step: on schedule, at the last step, or before time runs out."""
        step = self.state.step
        return step % self.valid_every == 0 or out_of_time or step == self.max_steps

    @contextmanager
    def timing_validation(self) -> Iterator[None]:
        """Measure the validation made in the block (the next one is expected to take as long).

        A validation cut short is not measured: it says nothing of a whole one.
        """
        start = self.state.clock()
        yield
        self.last_mark = self.state.clock()
        self.valid_seconds = self.last_mark - start
        self.slowest_validation = max(self.slowest_validation or 0.0, self.valid_seconds)

    @contextmanager
    def timing_save(self) -> Iterator[None]:
        """Measure the checkpoint written in the block (the next is expected to take as long)."""
        start = self.state.clock()
        yield
        self.last_mark = self.state.clock()
        self.save_seconds = self.last_mark - start

    def early_stop(self) -> bool:
        """Whether `patience` validations in a row failed to improve on the best score."""
        return self.patience > 0 and self.state.bad_validations >= self.patience


def budget_left(max_minutes: float, elapsed: float) -> None:
    """On resume: how much of the budget is left, or an error when none is.

    The budget counts the whole run, every resume included, so a resume with the same (or a
    smaller) `train.max_minutes` than the run has used has nothing to do.

    Raises:
        ConfigError: the run has used the whole budget.
    """
    if max_minutes <= 0:
        return
    used = elapsed / 60
    if used >= max_minutes:
        raise ConfigError(
            f"train.max_minutes={max_minutes:g} is used up: this run has trained {used:.1f} "
            f"minutes (the budget counts the whole run, every resume included); to train on, "
            f"raise it, e.g. --resume --set train.max_minutes={math.ceil(used + max_minutes)}"
        )
    log.info(
        "%.1f of the %g-minute budget left (train.max_minutes counts the whole run, "
        "every resume included)",
        max_minutes - used,
        max_minutes,
    )


def interrupted(signal_name: str, step: int, where: str = "") -> TrainingInterrupted:
    """The error of a run stopped by a signal, once its checkpoint is saved."""
    return TrainingInterrupted(
        f"{signal_name}: stopped {where}at step {step}; checkpoint saved, continue with --resume"
    )
