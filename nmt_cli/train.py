"""Training: the library entry point. The parts live in `nmt_cli.training`.

`train` trains a model on a preprocessed data folder into a run folder: the loop, validation,
early stopping, the time budget, checkpoints and resume (see `nmt_cli.training.trainer`).
"""

from __future__ import annotations

from pathlib import Path

from nmt_cli import rundir
from nmt_cli.config import Config, load_config
from nmt_cli.device import resolve_device
from nmt_cli.distributed import process_group
from nmt_cli.errors import ConfigError, TrainingInterrupted
from nmt_cli.runlock import run_lock
from nmt_cli.runtime import keep_freed_memory
from nmt_cli.training.init_from import InitFrom
from nmt_cli.training.result import TrainResult
from nmt_cli.training.trainer import Trainer

__all__ = ["InitFrom", "TrainResult", "Trainer", "TrainingInterrupted", "run_config", "train"]


def run_config(
    path: Path | None,
    overrides: list[str],
    run_dir: Path,
    resume: bool = False,
    init: InitFrom | None = None,
) -> Config:
    """The config of a run: its defaults, then the YAML file at `path`, then the `--set`
    overrides. The defaults are a resumed run's saved config, a fine-tuning run's checkpoint's
    config (`init`), or nmt's defaults for a new run.
    """
    if init is not None:
        return init.config(path, overrides)
    return load_config(path, overrides, base=rundir.saved_config(run_dir) if resume else None)


def train(
    config: Config,
    data_dir: Path,
    run_dir: Path,
    device: str = "auto",
    resume: bool = False,
    init: InitFrom | None = None,
) -> TrainResult:
    """Train a model on a preprocessed data folder into a run folder (the library entry point).

    With `init` (`InitFrom.load(checkpoint)`), a new run starts from that model's weights:
    fine-tuning, on data encoded with its tokenizers.

    Under torchrun (WORLD_SIZE set), this process trains as one rank of the job.

    Only one process at a time trains in a run folder (see `nmt_cli.runlock`).

    Raises:
        RunInUse: another process trains in `run_dir`.
        TrainingInterrupted: SIGINT/SIGTERM; a checkpoint was written, the run can be resumed.
        NmtError: bad data, config or checkpoint, divergence, or out of memory.
    """
    rundir.check_out(Path(run_dir), Path(data_dir))
    if init is not None:  # before the run folder is made
        if resume:
            raise ConfigError("--init-from starts a new run; continue one with --resume alone")
        init.check(config, Path(data_dir))
    keep_freed_memory()  # each step's loss and gradient buffers are reused, not faulted in again
    with (
        process_group(resolve_device(device)) as dist,
        run_lock(Path(run_dir), dist is None or dist.is_main),
    ):
        trainer = Trainer(config, data_dir, run_dir, device, resume, dist)
        if init is not None:
            init.apply(
                trainer.model, trainer.optimizer, trainer.schedule, trainer.state, config.train
            )
        return trainer.train()
