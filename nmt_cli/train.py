"""Training: the library entry point. The parts live in `nmt_cli.training`.

`train` trains a model on a preprocessed data folder into a run folder: the loop, validation,
early stopping, the time budget, checkpoints and resume (see `nmt_cli.training.trainer`).
"""

from __future__ import annotations

from pathlib import Path

from nmt_cli.config import Config
from nmt_cli.device import resolve_device
from nmt_cli.distributed import process_group
from nmt_cli.errors import TrainingInterrupted
from nmt_cli.training.result import TrainResult
from nmt_cli.training.trainer import Trainer

__all__ = ["TrainResult", "Trainer", "TrainingInterrupted", "train"]


def train(
    config: Config, data_dir: Path, run_dir: Path, device: str = "auto", resume: bool = False
) -> TrainResult:
    """Train a model on a preprocessed data folder into a run folder (the library entry point).

    Under torchrun (WORLD_SIZE set), this process trains as one rank of the job.

    Raises:
        TrainingInterrupted: SIGINT/SIGTERM; a checkpoint was written, the run can be resumed.
        NmtError: bad data, config or checkpoint, divergence, or out of memory.
    """
    with process_group(resolve_device(device)) as dist:
        return Trainer(config, data_dir, run_dir, device, resume, dist).train()
