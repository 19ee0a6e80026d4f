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
from nmt_cli.errors import ConfigError
from nmt_cli.schedule import LRSchedule
from nmt_cli.training.metrics import MetricsLog
from nmt_cli.training.state import TrainState, Window
from nmt_cli.training.stopping import (
    MIN_USEFUL_STEPS,
    SignalCatcher,
    StopPolicy,
    budget_left,
    too_few_steps,
)
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
    config: TrainConfig,
    step_seconds: float,
    valid_seconds: float,
    scores: list[float],
    valid_tokens: int = 0,
    save_seconds: float = 0.0,
) -> tuple[list[int], int, str, float]:
    """Drive a StopPolicy as the training loop does, on a fake clock; a step trains on 100
    target tokens, and a checkpoint is saved after every validation.

    Returns:
        the steps validated after, the step training stopped at, why, and the seconds it took.
    """
    clock = FakeClock()
    state = TrainState(clock=clock)
    policy = StopPolicy(config, state, valid_tokens, checkpoint_bytes=0)
    validated: list[int] = []
    why = "max_steps"
    while state.step < config.max_steps:
        state.step += 1
        clock.advance(step_seconds)
        policy.step_done(100)
        out_of_time = policy.out_of_time()
        if policy.validate_now(out_of_time):
            with policy.timing_validation():
                clock.advance(valid_seconds)
                state.record(scores[len(validated)] if scores else 0.0)
            with policy.timing_save():
                clock.advance(save_seconds)
            validated.append(state.step)
            if out_of_time or policy.out_of_time():
                why = "max_minutes"
                break
            if policy.early_stop():
                why = "early stopping"
                break
    return validated, state.step, why, state.elapsed()


def test_without_a_budget_training_runs_to_max_steps_validating_on_schedule() -> None:
    config = TrainConfig(max_steps=10, valid_every=4)
    assert run_policy(config, 1e6, 1e6, [])[:3] == ([4, 8, 10], 10, "max_steps")


def test_the_budget_keeps_a_step_a_validation_and_a_save_with_a_margin() -> None:
    # 100 s; steps take 10 s, a validation 12 s, a save 2 s. After the validation at step 3
    # (44 s) the reserve is 10 + 1.25 x (12 + 2) = 27.5 s: step 4 (54 s) and step 5 (64 s)
    # leave room, after step 6 (74 s) another step and validation would not fit: validate
    # now and stop, inside the budget.
    config = TrainConfig(max_steps=100, valid_every=3, max_minutes=100 / 60)
    validated, step, why, seconds = run_policy(config, 10.0, 12.0, [], save_seconds=2.0)
    assert (validated, step, why) == ([3, 6], 6, "max_minutes")
    assert seconds == 88.0 <= 100


def test_a_long_validation_stops_at_once_when_the_next_would_not_fit() -> None:
    # At step 2 (20 s) the validation takes 35 s: 55 s + a step and another 35 s is past 60 s.
    config = TrainConfig(max_steps=100, valid_every=2, max_minutes=1.0)
    assert run_policy(config, 10.0, 35.0, []) == ([2], 2, "max_minutes", 55.0)


def test_the_first_validation_is_guessed_from_the_training_speed() -> None:
    # No validation before the budget's end: 100 tokens per 10 s step, 20 valid tokens, so a
    # validation is guessed at VALID_COST (3) x 20 / 10 = 6 s: a reserve of 10 + 7.5 s. Step 4
    # (40 s) leaves room, step 5 (50 s) does not: validate there, 8 s, done at 58 s.
    config = TrainConfig(max_steps=100, valid_every=100, max_minutes=1.0)
    assert run_policy(config, 10.0, 8.0, [], valid_tokens=20) == ([5], 5, "max_minutes", 58.0)


@pytest.mark.parametrize(
    ("step_seconds", "valid_seconds", "save_seconds"),
    [(0.5, 3.0, 1.0), (2.0, 0.1, 0.1), (7.0, 20.0, 5.0), (1.0, 40.0, 0.0), (13.0, 1.0, 9.0)],
)
def test_a_run_on_schedule_ends_inside_its_budget(
    step_seconds: float, valid_seconds: float, save_seconds: float
) -> None:
    config = TrainConfig(max_steps=10**6, valid_every=10, max_minutes=2.0)
    validated, _, why, seconds = run_policy(
        config, step_seconds, valid_seconds, [], valid_tokens=50, save_seconds=save_seconds
    )
    assert why == "max_minutes" and validated and seconds <= 120.0


def test_the_budget_keeps_room_for_the_slowest_validation_so_far() -> None:
    # Validations of 20 s then 8 s: the next may take 20 s again (a busier machine), so with
    # 10 s steps and instant saves the reserve stays 10 + 1.25 x 20 = 35 s.
    clock = FakeClock()
    state = TrainState(clock=clock)
    policy = StopPolicy(TrainConfig(max_minutes=2.0), state, checkpoint_bytes=0)
    policy.save_seconds = 0.0
    for seconds in (20.0, 8.0):
        clock.advance(10.0)
        policy.step_done(100)
        with policy.timing_validation():
            clock.advance(seconds)
    assert policy.valid_seconds == 8.0 and policy.validation_estimate() == 20.0
    assert policy.reserve() == 35.0
    clock.advance(36.0)  # 48 s of steps and validations so far: 84 s + 35 s fits in 120 s
    assert not policy.out_of_time()
    clock.advance(2.0)  # 86 s + 35 s does not
    assert policy.out_of_time()


def test_a_validation_is_cut_by_a_signal_or_at_the_budget_end() -> None:
    clock = FakeClock()
    state = TrainState(clock=clock)
    policy = StopPolicy(TrainConfig(max_minutes=1.0), state, checkpoint_bytes=0)
    with policy.timing_save():
        clock.advance(4.0)  # saves take 4 s: keep 5 s for the last one
    assert policy.cut_validation() is None
    clock.advance(50.0)
    assert policy.cut_validation() is None  # 54 s + 5 s: still inside
    clock.advance(2.0)
    assert policy.cut_validation() == "max_minutes"  # 56 s + 5 s: not any more
    unlimited = StopPolicy(TrainConfig(), state)
    assert unlimited.cut_validation() is None
    unlimited.signals.received = signal.SIGTERM
    assert unlimited.cut_validation() == "SIGTERM"


def test_a_resume_is_told_the_budget_counts_the_whole_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ConfigError) as error:
        budget_left(16, elapsed=17.3 * 60)
    message = str(error.value)
    assert "train.max_minutes=16 is used up" in message and "17.3 minutes" in message
    assert "counts the whole run" in message and "--set train.max_minutes=34" in message
    with caplog.at_level("INFO"):
        budget_left(20, elapsed=17.3 * 60)
    assert "2.7 of the 20-minute budget left" in caplog.text
    budget_left(0, elapsed=1e9)  # no budget: nothing to say


@pytest.mark.parametrize(
    ("steps", "why", "warned"),
    [(67, "max_minutes", True), (999, "early stopping", True),
     (MIN_USEFUL_STEPS, "max_minutes", False), (67, "max_steps", False)],
)  # fmt: skip
def test_a_run_too_short_to_be_useful_is_warned_about(steps: int, why: str, warned: bool) -> None:
    warning = too_few_steps(steps, why)
    assert (warning is not None) == warned
    if warning is not None:
        assert f"after {steps} updates ({why})" in warning and "1,000" in warning


def test_early_stopping_after_patience_validations_without_improvement() -> None:
    config = TrainConfig(max_steps=100, valid_every=5, patience=2)
    scores = [1.0, 2.0, 1.5, 3.0, 2.0, 3.0, 9.0]
    assert run_policy(config, 1.0, 1.0, scores)[:3] == (
        [5, 10, 15, 20, 25, 30],
        30,
        "early stopping",
    )
    never = dataclasses.replace(config, patience=0, max_steps=30)
    assert run_policy(never, 1.0, 1.0, [1.0] * 6)[:3] == ([5, 10, 15, 20, 25, 30], 30, "max_steps")


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
    log.validation(10, 90.0, None, ValidMetrics(ppl=math.nan, bleu=1.234), 1e-3, 1234.56)
    log.training(15, 135.0, math.inf, 1e-3, 1100.0)
    log.validation(20, 180.0, 2.345678, ValidMetrics(ppl=9.87654, bleu=5.0), 5e-4, 1000.0)

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in metrics.jsonl")

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_constant=no_constants) for line in lines]
    assert rows == [
        {"step": 10, "minutes": 1.5, "train_loss": None, "valid_ppl": None, "valid_bleu": 1.23,
         "lr": 1e-3, "tokens_per_s": 1234.6},
        {"step": 15, "minutes": 2.25, "train_loss": None, "lr": 1e-3, "tokens_per_s": 1100.0},
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
