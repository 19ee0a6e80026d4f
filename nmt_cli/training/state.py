"""The state of a training run that outlives its process, and the window of recent steps.

`TrainState` is the one place the step, the counters, the run's wall clock, the best
validation score and early-stopping patience live; a checkpoint carries its `state_dict`.
The sampler's epoch and position stay in the sampler (`TrainBatches.state_dict`), which
needs them to continue the data stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class TrainState:
    """Counters of one run, over all its processes (a resumed run continues them).

    Attributes:
        step: updates done.
        train_tokens: target tokens trained on.
        train_seconds: seconds spent in training steps (validation excluded): tokens/s.
        elapsed_before: wall-clock seconds the run took before this process started it.
        best_score: the best validation score (higher is better), None before any.
        bad_validations: validations since the best one (early stopping's patience).
        clock: seconds from an arbitrary origin (`time.perf_counter`; a fake one in tests).
            This process's share of the run's wall clock counts from the state's creation.
    """

    step: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    elapsed_before: float = 0.0
    best_score: float | None = None
    bad_validations: int = 0
    clock: Callable[[], float] = field(default=time.perf_counter, repr=False, compare=False)
    started: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        """Wall-clock seconds of the run so far, this process included."""
        return self.elapsed_before + self.clock() - self.started

    def tokens_per_second(self) -> float:
        """Target tokens per second of training (validation excluded), over the whole run."""
        return self.train_tokens / max(self.train_seconds, 1e-9)

    def record(self, score: float) -> bool:
        """Take a validation score (higher is better); returns whether it is the best yet."""
        improved = self.best_score is None or score > self.best_score
        if improved:
            self.best_score, self.bad_validations = score, 0
        else:
            self.bad_validations += 1
        return improved

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's keys; `elapsed` is the run's wall clock up to now."""
        return {
            "step": self.step,
            "best_score": self.best_score,
            "bad_validations": self.bad_validations,
            "elapsed": self.elapsed(),
            "train_seconds": self.train_seconds,
            "train_tokens": self.train_tokens,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's counters (the extra keys of a checkpoint are ignored)."""
        self.step, self.best_score = state["step"], state["best_score"]
        self.bad_validations = state["bad_validations"]
        self.elapsed_before = state["elapsed"]
        self.train_seconds, self.train_tokens = state["train_seconds"], state["train_tokens"]


class Window:
    """The steps since the last progress line or validation: their loss, tokens and seconds.

    The hot loop adds each step's loss as a device tensor, so nothing waits for the device
    until `report` reads the sum back. The window's tokens and seconds go to the `TrainState`
    as they happen: this is the one place `train_tokens` and `train_seconds` grow.
    """

    def __init__(self, state: TrainState, device: torch.device) -> None:
        self.state = state
        self.loss = torch.zeros((), device=device)  # summed over the window's steps
        self.tokens = 0
        self.start = state.clock()
        self.last_loss: float | None = None  # per target token, at the last report

    def add(self, loss: torch.Tensor, tokens: int) -> None:
        """One step: its summed loss (a device scalar) and its target tokens."""
        self.loss += loss
        self.tokens += tokens
        self.state.train_tokens += tokens

    def close(self) -> float:
        """End the window's training time (before a validation); returns its seconds."""
        seconds = self.state.clock() - self.start
        self.state.train_seconds += seconds
        return seconds

    def reopen(self) -> None:
        """Start a new, empty window now."""
        self.loss.zero_()
        self.tokens = 0
        self.start = self.state.clock()

    def report(self) -> tuple[float, float]:
        """Close the window and open the next; returns its loss per token and tokens/s."""
        seconds = self.close()
        self.last_loss = self.loss.item() / max(self.tokens, 1)
        speed = self.tokens / max(seconds, 1e-9)
        self.reopen()
        return self.last_loss, speed
