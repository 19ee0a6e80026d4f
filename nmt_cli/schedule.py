"""Learning-rate schedules: constant, reduce-on-plateau, and warmup + inverse square root."""

from __future__ import annotations

import math
from typing import Any

import torch

from nmt_cli.config import TrainConfig


class LRSchedule:
    """Sets the optimizer's learning rate after every update and every validation.

    `inverse_sqrt`: lr rises linearly for `warmup_steps`, then decays as 1/sqrt(step).
    `plateau`: lr is multiplied by `plateau_factor` once the validation score has not improved
    for `plateau_patience` validations in a row, never below `min_lr`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig) -> None:
        self.optimizer, self.config = optimizer, config
        self.plateau_lr = config.lr
        # Validations without improvement since the best one or the last cut; whether a
        # validation improved is the training state's decision (`TrainState.record`).
        self.bad_validations = 0
        self.step(0)

    def lr_at(self, step: int) -> float:
        c = self.config
        if c.schedule == "inverse_sqrt":
            warmup = max(1, c.warmup_steps)
            return c.lr * min((step + 1) / warmup, math.sqrt(warmup / max(step + 1, 1)))
        if c.schedule == "plateau":
            return self.plateau_lr
        return c.lr

    def step(self, step: int) -> float:
        """Set the lr for the update after `step` updates; returns it."""
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def on_validation(self, improved: bool) -> None:
        """Feed the plateau rule whether a validation improved on the best score so far."""
        if improved:
            self.bad_validations = 0
            return
        self.bad_validations += 1
        if (
            self.config.schedule == "plateau"
            and self.bad_validations >= self.config.plateau_patience
        ):
            self.plateau_lr = max(self.config.min_lr, self.plateau_lr * self.config.plateau_factor)
            self.bad_validations = 0

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_lr": self.plateau_lr, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Also reads checkpoints that kept a copy of the best score here (it is ignored)."""
        self.plateau_lr = state["plateau_lr"]
        self.bad_validations = state["bad_validations"]
