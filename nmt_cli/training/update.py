"""What one update computes: the loss of a batch, and the updates skipped as non-finite.

A non-finite loss or gradient skips its update on the device (the fused Adam's
`found_inf`); `SkippedUpdates` counts them there and reads the counts back only when asked,
so the hot loop never waits for the device.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from pathlib import Path

import torch

from nmt_cli.config import TrainConfig
from nmt_cli.data import Batch
from nmt_cli.errors import NmtError
from nmt_cli.loss import generator_loss
from nmt_cli.model import Seq2Seq

log = logging.getLogger(__name__)


def scheduled_sampling_prob(config: TrainConfig, step: int) -> float:
    """Scheduled sampling's rate at `step`: rises linearly to train.scheduled_sampling at
    train.max_steps, then stays there."""
    return config.scheduled_sampling * min(1.0, step / config.max_steps)


def batch_loss(
    model: Seq2Seq,
    batch: Batch,
    label_smoothing: float,
    sampling_prob: float,
    autocast: AbstractContextManager[object],
    forward: torch.nn.Module | None = None,
) -> torch.Tensor:
    """Summed loss of a batch; the generator sees real target positions only.

    Args:
        model: the model (its generator computes the loss).
        batch: on the model's device.
        label_smoothing: 0 for the plain cross-entropy (validation).
        sampling_prob: the probability of feeding the model's own previous prediction
            instead of the reference (scheduled sampling); 0 is plain teacher forcing.
        autocast: the precision context (bf16 autocast, or a null context for fp32).
        forward: what runs the forward pass, when not `model` itself (its DDP wrapper,
            whose backward all-reduces the gradients).

    Returns:
        a scalar: the loss summed over the batch's target tokens.
    """
    forward = model if forward is None else forward
    with autocast:
        outputs = forward(batch.src, batch.src_mask, batch.src_lengths, batch.tgt_in, sampling_prob)
        hidden = outputs.reshape(-1, outputs.size(-1)).index_select(0, batch.target_index)  # N x O
        return generator_loss(hidden, model.generator, batch.targets, label_smoothing)


class SkippedUpdates:
    """Updates skipped because their loss or gradients were not finite, counted on the device."""

    def __init__(self, device: torch.device, max_in_a_row: int) -> None:
        self.in_a_row = torch.zeros((), device=device)
        self.total = torch.zeros((), device=device)
        self.max_in_a_row = max_in_a_row

    def add(self, found_inf: torch.Tensor) -> None:
        """One update: `found_inf` is 1.0 when it was skipped, else 0.0 (a device scalar)."""
        self.in_a_row = (self.in_a_row + found_inf) * found_inf
        self.total += found_inf

    def check(self, step: int, last_checkpoint: Path) -> None:
        """Read the counts back and warn about any skipped update.

        Raises:
            NmtError: train.max_bad_steps updates in a row were skipped: training diverged.
        """
        total, in_a_row = int(self.total.item()), int(self.in_a_row.item())
        if total:
            log.warning("%d updates skipped so far (non-finite loss or gradients)", total)
        if in_a_row >= self.max_in_a_row:
            kept = (
                f"the last good checkpoint is {last_checkpoint}"
                if last_checkpoint.exists()
                else "no checkpoint was written yet"
            )
            raise NmtError(
                f"training diverged: {in_a_row} non-finite losses in a row at step {step}; "
                f"{kept} (try a lower train.lr)"
            )
