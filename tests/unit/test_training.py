"""The parts of training on their own: the state a checkpoint carries, the window of recent
steps, the stop policy against a fake clock, signals, the metrics file and the plateau rule."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
from pathlib import Path

import pytest
import torch

from nmt_cli.config import TrainConfig
from nmt_cli.schedule import LRSchedule
from nmt_cli.training.metrics import MetricsLog
from nmt_cli.training.state import TrainState, Window
from nmt_cli.training.stopping import SignalCatcher, StopPolicy
from nmt_cli.training.validator import ValidMetrics, score_of


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---- TrainState --------------------------------------------------------------------------


def test_state_dict_round_trip_continues_the_run_clock() -> None:
    clock = FakeClock()
    state = TrainState(
        step=7, train_tokens=900, train_seconds=3.5, elapsed_before=20.0, clock=clock
    )
    state.record(1.0)
    state.record(0.5)
    clock.advance(4.0)
    saved = state.state_dict()
    assert saved == {
        "step": 7,
        "best_score": 1.0,
        "bad_validations": 1,
        "elapsed": 24.0,  # before this process, and this process's 4 s
        "train_seconds": 3.5,
        "train_tokens": 900,
    }
    resumed = TrainState(clock=clock)
    resumed.load_state_dict({**saved, "model": {}, "sampler": {}})  # a checkpoint's other keys
    assert resumed.state_dict() == saved
    clock.advance(6.0)
    assert resumed.elapsed() == 30.0
    assert (resumed.step, resumed.best_score, resumed.bad_validations) == (7, 1.0, 1)


def test_record_keeps_the_best_score_and_counts_validations_since() -> None:
    state = TrainState()
    improved = [state.record(s) for s in (-9.0, -8.0, -8.0, -8.5, -7.0, -7.5)]
    assert improved == [True, True, False, False, True, False]  # a tie is no improvement
    assert (state.best_score, state.bad_validations) == (-7.0, 1)


def test_window_reports_loss_per_token_and_adds_its_time_and_tokens_to_the_state() -> None:
    clock = FakeClock()
    state = TrainState(clock=clock)
    window = Window(state, torch.device("cpu"))
    window.add(torch.tensor(6.0), 3)
    window.add(torch.tensor(10.0), 5)
    clock.advance(2.0)
    assert window.report() == (2.0, 4.0)  # 16 / 8 tokens, 8 tokens / 2 s
    assert (state.train_tokens, state.train_seconds, window.last_loss) == (8, 2.0, 2.0)
    window.add(torch.tensor(1.0), 4)
    clock.advance(1.0)
    window.close()  # before a validation: its time counts, the validation's does not
    clock.advance(30.0)
    window.reopen()
    clock.advance(1.0)
    assert window.report() == (0.0, 0.0)  # an empty window: nothing since the validation
    assert (state.train_tokens, state.train_seconds) == (12, 4.0)
    assert state.tokens_per_second() == 3.0


# ---- the stop policy ---------------------------------------------------------------------


def run_policy(
    config: TrainConfig, step_seconds: float, valid_seconds: float, scores: list[float]
) -> tuple[list[int], int, str]:
    """Drive a StopPolicy as the training loop does, on a fake clock.

    Returns:
        the steps validated after, the step training stopped at, and why.
    """
    clock = FakeClock()
    state = TrainState(clock=clock)
    policy = StopPolicy(config, state)
    state.start_clock()
    validated: list[int] = []
    while state.step < config.max_steps:
        state.step += 1
        clock.advance(step_seconds)
        out_of_time = policy.out_of_time()
        if policy.validate_now(out_of_time):
            with policy.timing_validation():
                clock.advance(valid_seconds)
                state.record(scores[len(validated)] if scores else 0.0)
            validated.append(state.step)
            if out_of_time or policy.out_of_time():
                return validated, state.step, "max_minutes"
            if policy.early_stop():
                return validated, state.step, "early stopping"
    return validated, state.step, "max_steps"


def test_without_a_budget_training_runs_to_max_steps_validating_on_schedule() -> None:
    config = TrainConfig(max_steps=10, valid_every=4)
    assert run_policy(config, 1e6, 1e6, []) == ([4, 8, 10], 10, "max_steps")


def test_the_budget_counts_the_next_validation_as_long_as_the_last() -> None:
    # 60 s; steps take 10 s, a validation 15 s. After step 4 (55 s) another validation would
    # end past the budget (55 + 15 > 60): validate now, once, and stop.
    config = TrainConfig(max_steps=100, valid_every=3, max_minutes=1.0)
    assert run_policy(config, 10.0, 15.0, []) == ([3, 4], 4, "max_minutes")


def test_a_long_validation_stops_at_once_when_the_next_would_not_fit() -> None:
    # At step 2 (20 s) the validation takes 35 s: 55 s + another 35 s is past 60 s.
    config = TrainConfig(max_steps=100, valid_every=2, max_minutes=1.0)
    assert run_policy(config, 10.0, 35.0, []) == ([2], 2, "max_minutes")


def test_the_budget_is_exact_at_its_edge() -> None:
    # 30 s steps, instant validations: at 60 s the budget is not yet passed, at 90 s it is.
    config = TrainConfig(max_steps=100, valid_every=100, max_minutes=1.0)
    assert run_policy(config, 30.0, 0.0, []) == ([3], 3, "max_minutes")


def test_early_stopping_after_patience_validations_without_improvement() -> None:
    config = TrainConfig(max_steps=100, valid_every=5, patience=2)
    scores = [1.0, 2.0, 1.5, 3.0, 2.0, 3.0, 9.0]
    assert run_policy(config, 1.0, 1.0, scores) == ([5, 10, 15, 20, 25, 30], 30, "early stopping")
    never = dataclasses.replace(config, patience=0, max_steps=30)
    assert run_policy(never, 1.0, 1.0, [1.0] * 6) == ([5, 10, 15, 20, 25, 30], 30, "max_steps")


def test_a_signal_is_caught_once_and_a_second_one_aborts() -> None:
    before = signal.getsignal(signal.SIGTERM)
    catcher = SignalCatcher()
    with catcher.installed():
        assert catcher.received is None
        signal.raise_signal(signal.SIGTERM)
        assert catcher.received == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


# ---- scores, metrics.jsonl, the plateau schedule -----------------------------------------


def test_score_is_bleu_or_minus_perplexity() -> None:
    metrics = ValidMetrics(ppl=12.5, bleu=30.25)
    assert score_of(metrics, "bleu") == 30.25
    assert score_of(metrics, "ppl") == -12.5


def test_metrics_rows_are_strict_json_with_null_for_a_missing_or_non_finite_value(
    tmp_path: Path,
) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write(10, 90.0, None, ValidMetrics(ppl=math.nan, bleu=1.234), 1e-3, 1234.56)
    log.write(20, 180.0, 2.345678, ValidMetrics(ppl=9.87654, bleu=5.0), 5e-4, 1000.0)

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in metrics.jsonl")

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_constant=no_constants) for line in lines]
    assert rows == [
        {"step": 10, "minutes": 1.5, "train_loss": None, "valid_ppl": None, "valid_bleu": 1.23,
         "lr": 1e-3, "tokens_per_s": 1234.6},
        {"step": 20, "minutes": 3.0, "train_loss": 2.3457, "valid_ppl": 9.877, "valid_bleu": 5.0,
         "lr": 5e-4, "tokens_per_s": 1000.0},
    ]  # fmt: skip


def test_plateau_schedule_cuts_on_the_training_state_decisions() -> None:
    config = TrainConfig(
        schedule="plateau", lr=1.0, plateau_factor=0.5, plateau_patience=2, min_lr=0.2
    )
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=123.0)
    schedule, state = LRSchedule(optimizer, config), TrainState()
    # (score, lr after it): a tie is no improvement; each cut restarts the count
    expected = [
        (1.0, 1.0), (2.0, 1.0), (1.5, 1.0), (2.0, 0.5), (1.0, 0.5), (3.0, 0.5), (2.9, 0.5),
        (2.9, 0.25), (0.0, 0.25), (0.0, 0.2), (0.0, 0.2), (0.0, 0.2),
    ]  # fmt: skip
    for i, (score, lr) in enumerate(expected):
        schedule.on_validation(state.record(score))
        assert schedule.step(100 + i) == pytest.approx(lr), i
    assert (
        state.bad_validations == 6
    )  # since the 3.0: early stopping's count does not restart at a cut
    resumed = LRSchedule(optimizer, config)
    resumed.load_state_dict({**schedule.state_dict(), "best": 3.0})  # an older checkpoint
    assert resumed.state_dict() == schedule.state_dict()


def test_the_closing_line_gives_perplexity_as_a_perplexity() -> None:
    from nmt_cli.training.trainer import TrainResult

    result = TrainResult(steps=20, best_score=-1.29, minutes=1.0, tokens_per_second=10.0,
                         stopped_because="max_steps")  # fmt: skip
    assert result.summary("ppl").endswith("best valid ppl 1.29")
    assert TrainResult(20, 31.5, 1.0, 10.0, "max_steps").summary("bleu").endswith("bleu 31.50")
