"""The training bar counts toward the limit that ends the run, and stays out of log files."""

from __future__ import annotations

import io

import pytest

from nmt_cli.progress import TrainProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def on_terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """stderr becomes a terminal. Called in the test itself: pytest's capture resets stderr
    between a fixture's setup and the test."""
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    return stream


def test_steps_without_a_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    on_terminal(monkeypatch)
    progress = TrainProgress(max_steps=500, max_minutes=0, step=20, elapsed=0.0, show=True)
    progress.update(21, elapsed=1.0)
    assert (progress.bar.total, progress.bar.n, progress.bar.unit) == (500, 21, "step")
    progress.close()


def test_a_time_budget_counts_its_seconds_and_shows_the_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = on_terminal(monkeypatch)
    # 100,000 default steps would give an ETA of days; the budget ends the run in 2 minutes.
    progress = TrainProgress(max_steps=100_000, max_minutes=2, step=0, elapsed=0.0, show=True)
    progress.update(1, elapsed=0.4)
    progress.update(7, elapsed=30.2)
    progress.show(loss="3.210")
    assert (progress.bar.total, progress.bar.n, progress.bar.unit) == (120, 30, "s")
    progress.update(9, elapsed=500.0)  # validation ran over: the bar stops at its end
    assert progress.bar.n == 120
    progress.close()
    assert "step=7" in terminal.getvalue() and "loss=3.210" in terminal.getvalue()


def test_resume_starts_from_the_elapsed_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    on_terminal(monkeypatch)
    progress = TrainProgress(max_steps=100_000, max_minutes=10, step=300, elapsed=250.0, show=True)
    assert progress.bar.n == 250
    progress.close()


@pytest.mark.parametrize("tty, show", [(False, True), (True, False)])
def test_no_bar_in_a_log_file_or_on_other_ranks(
    monkeypatch: pytest.MonkeyPatch, tty: bool, show: bool
) -> None:
    stream = Terminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    progress = TrainProgress(max_steps=50, max_minutes=0, step=0, elapsed=0.0, show=show)
    for step in range(1, 51):
        progress.update(step, elapsed=float(step))
    progress.close()
    assert stream.getvalue() == ""


def test_a_budget_bar_shows_no_rate_and_a_validation_counts_its_sentences(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = on_terminal(monkeypatch)
    progress = TrainProgress(max_steps=100_000, max_minutes=8, step=0, elapsed=0.0, show=True)
    progress.update(5, elapsed=30.0)
    progress.validating("validating", 400, 1014, elapsed=60.0)
    assert progress.bar.n == 60  # the budget's clock runs on during the validation
    progress.training()
    progress.update(6, elapsed=61.0)
    progress.close()
    text = terminal.getvalue()
    assert "validating 400/1,014" in text and "/480 s" in text
    assert "s/s" not in text and "it/s" not in text  # a rate of seconds per second says nothing
    frames = [frame for frame in text.split("\r") if frame.strip()]
    assert frames[-1].startswith("train:")  # back to training after it
