"""Learning-rate schedules against their formulas: constant, linear warmup then inverse square
root, and reduce-on-plateau with its floor."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nmt_cli.config import TrainConfig
from nmt_cli.schedule import LRSchedule
from nmt_cli.training.state import TrainState


def schedule(**changes: object) -> tuple[LRSchedule, torch.optim.Optimizer]:
    config = dataclasses.replace(TrainConfig(), **changes)  # type: ignore[arg-type]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=123.0)
    return LRSchedule(optimizer, config), optimizer


def lr_of(optimizer: torch.optim.Optimizer) -> float:
    (group,) = optimizer.param_groups
    return float(group["lr"])


def test_constant_keeps_the_configured_lr() -> None:
    sched, optimizer = schedule(schedule="constant", lr=0.003)
    assert lr_of(optimizer) == 0.003  # set when the schedule is made
    for step in (0, 1, 999, 10**6):
        assert sched.step(step) == 0.003 and lr_of(optimizer) == 0.003
    for improved in (True, False, False):  # bad validations cut only the plateau schedule
        sched.on_validation(improved)
    assert sched.step(5) == 0.003


def inverse_sqrt(lr: float, warmup: int, step: int) -> float:
    """The update after `step` updates is number n = step + 1: lr * n / warmup up to the
    warmup, then lr * sqrt(warmup / n)."""
    n = step + 1
    return lr * n / warmup if n <= warmup else lr * math.sqrt(warmup / n)


@pytest.mark.parametrize("warmup", [1, 4, 1000])
def test_inverse_sqrt_warms_up_linearly_then_decays_as_one_over_sqrt(warmup: int) -> None:
    lr = 0.002
    sched, optimizer = schedule(schedule="inverse_sqrt", lr=lr, warmup_steps=warmup)
    steps = [0, 1, warmup // 2, warmup - 2, warmup - 1, warmup, 4 * warmup - 1, 10**5]
    for step in sorted({s for s in steps if s >= 0}):
        assert sched.step(step) == pytest.approx(inverse_sqrt(lr, warmup, step), rel=1e-12)
        assert lr_of(optimizer) == pytest.approx(inverse_sqrt(lr, warmup, step), rel=1e-12)
    assert sched.step(warmup - 1) == pytest.approx(lr)  # the peak: the last warmup update
    assert sched.step(4 * warmup - 1) == pytest.approx(lr / 2)  # 4x the steps, half the lr


def test_inverse_sqrt_without_warmup_decays_from_the_first_step() -> None:
    sched, _ = schedule(schedule="inverse_sqrt", lr=0.01, warmup_steps=0)
    assert [sched.step(s) for s in (0, 3, 99)] == pytest.approx([0.01, 0.005, 0.001])


# The plateau rule is fed one validation score (higher is better) at a time: the run's
# TrainState judges it (the one place best score and patience live) and the schedule
# takes that verdict.
def validate(sched: LRSchedule, score: float, state: TrainState) -> None:
    sched.on_validation(state.record(score))


def test_plateau_cuts_after_patience_bad_validations_down_to_the_floor() -> None:
    sched, optimizer = schedule(
        schedule="plateau", lr=1.0, plateau_factor=0.5, plateau_patience=2, min_lr=0.2
    )
    # (score, lr after it): a tie is no improvement; each cut restarts the count
    expected = [
        (1.0, 1.0),  # the first score is the best so far
        (2.0, 1.0),
        (1.5, 1.0),  # 1 bad
        (2.0, 0.5),  # 2 bad (a tie): cut
        (1.0, 0.5),  # 1 bad since the cut
        (3.0, 0.5),  # better: the count restarts
        (2.9, 0.5),
        (2.9, 0.25),  # cut
        (0.0, 0.25),
        (0.0, 0.2),  # 0.125 is under the floor
        (0.0, 0.2),
        (0.0, 0.2),  # at the floor it stays
    ]
    state = TrainState()
    for i, (score, lr) in enumerate(expected):
        validate(sched, score, state)
        assert sched.step(100 + i) == pytest.approx(lr), i
        assert lr_of(optimizer) == pytest.approx(lr), i
