"""The training progress bar: against the limit that will end the run.

With only `train.max_steps` the bar counts steps. With a time budget (`train.max_minutes`) it
counts the budget's seconds, so its ETA is the budget's end rather than the hours that
100,000 default steps would take; the step count goes in the postfix, and no rate is shown
(a rate of seconds per second says nothing). During a validation the bar's label counts the
validation's sentences (`validating 400/1014`), so a long validation does not look like a
hang. On a stream that is not a terminal (a log file, CI) there is no bar: `train.log_every`
lines report progress there.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

# A time budget's bar: percent, seconds of the budget, elapsed < remaining, postfix; no rate.
_BUDGET_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]"
)


class TrainProgress:
    def __init__(self, max_steps: int, max_minutes: float, step: int, elapsed: float, show: bool):
        """Args: the run's limits, the step and elapsed seconds it starts from (on resume), and
        whether this process shows a bar at all (rank 0 only)."""
        self.by_time = max_minutes > 0
        self.total = round(max_minutes * 60) if self.by_time else max_steps
        self.bar = tqdm(
            total=self.total,
            initial=round(elapsed) if self.by_time else step,
            desc="train",
            unit="s" if self.by_time else "step",
            bar_format=_BUDGET_FORMAT if self.by_time else None,
            dynamic_ncols=True,
            leave=False,
            disable=not (show and sys.stderr.isatty()),
        )
        self.postfix: dict[str, str] = {}

    def update(self, step: int, elapsed: float) -> None:
        """After each step: the new step number and the elapsed seconds of the run."""
        if self.by_time:
            self.postfix["step"] = f"{step:,}"
            self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.update(max(0, min(round(elapsed), self.total) - self.bar.n))
        else:
            self.bar.update(1)

    def show(self, **values: str) -> None:
        """Replace the postfix values (loss, tokens/s, lr)."""
        self.postfix.update(values)
        self.bar.set_postfix(self.postfix)

    def validating(self, what: str, done: int, total: int, elapsed: float) -> None:
        """During a validation: `done` of its `total` sentences (the label reads `what d/t`),
        and the run's elapsed seconds."""
        if self.by_time:
            self.bar.update(max(0, min(round(elapsed), self.total) - self.bar.n))
        self.bar.set_description(f"{what} {done:,}/{total:,}")

    def training(self) -> None:
        """After a validation: the label is back to `train`."""
        self.bar.set_description("train")

    def close(self) -> None:
        self.bar.close()
