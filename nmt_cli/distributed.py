"""Data-parallel training over several processes: torchrun's process group, and `--nproc`.

torchrun starts one process (rank) per device and describes the job in the environment: RANK,
WORLD_SIZE, LOCAL_RANK (the device on this machine), MASTER_ADDR and MASTER_PORT. Without
WORLD_SIZE, or with a world of one, nothing here runs: a single process never creates a
process group, so it trains exactly as it always did.

Two groups connect the ranks: the gradients travel over NCCL on CUDA (gloo on the CPU), and
the decisions every rank must take together (stop now? the validation score) over gloo on the
host, so agreeing on them never waits for the device.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from nmt_cli.errors import ConfigError, NmtError, TrainingInterrupted

T = TypeVar("T")

# Rank 0 validates and writes checkpoints while the other ranks wait for it in a collective,
# so the process group must tolerate a long silence; a rank that dies is noticed at once anyway
# (its connections close, and torchrun stops the job).
WAIT = timedelta(minutes=60)


class PeerLostError(NmtError):
    """Another rank stopped or crashed, so this one cannot go on."""

    exit_code = 3  # tells the launcher this rank failed because another one did


@dataclass(frozen=True)
class Dist:
    """This process's place in a job of `world_size` ranks, and the collectives training uses.

    Attributes:
        device: this rank's device (cuda:LOCAL_RANK, or the CPU).
        control: the gloo group for host-side decisions (None: the main group, gloo already).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    control: dist.ProcessGroup | None

    @property
    def is_main(self) -> bool:
        """Rank 0 validates, logs and writes checkpoints for every rank."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> DistributedDataParallel:
        """The model as the training step calls it: its backward all-reduces the gradients."""
        ids = [self.device] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a device tensor over the ranks, in place (queued on the device: no host wait)."""
        dist.all_reduce(tensor)
        return tensor

    def max(self, values: Sequence[int]) -> list[int]:
        """The largest of each value over the ranks: any rank's flag becomes every rank's."""
        tensor = torch.tensor(list(values), dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.control)
        return [int(v) for v in tensor.tolist()]

    def barrier(self) -> None:
        """Wait until every rank gets here (on the host)."""
        dist.barrier(group=self.control)

    def from_main(self, value: T) -> T:
        """Rank 0's `value` (any picklable object), on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]


def _rank_device(device: torch.device, rank: int, local_rank: int) -> torch.device:
    """The device of this rank: cuda:LOCAL_RANK for a CUDA run, else the CPU."""
    if device.type != "cuda":
        return device
    if device.index is not None and device.index != local_rank:
        raise ConfigError(
            f"--device {device}: with several ranks each uses cuda:LOCAL_RANK; use --device cuda"
        )
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"rank {rank}: there is no cuda:{local_rank} (this machine has "
            f"{torch.cuda.device_count()} CUDA devices); start at most that many ranks per machine"
        )
    return torch.device("cuda", local_rank)


def _lost_contact(error: BaseException) -> bool:
    """Whether a collective failed because another rank went away (torch's or gloo's words)."""
    text = str(error)
    return isinstance(error, dist.DistError) or any(
        words in text for words in ("gloo/transport", "Connection closed by", "Connection reset")
    )


@contextmanager
def process_group(device: torch.device) -> Iterator[Dist | None]:
    """Join the torchrun job this process belongs to, for the duration of a training run.

    Rank 0 speaks for the job: meanwhile, the other ranks log only warnings and errors.

    Yields:
        this rank's Dist, or None when the process runs alone (no WORLD_SIZE, or one rank).

    Raises:
        PeerLostError: a collective failed because another rank stopped or crashed.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        yield None
        return
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    except KeyError as e:
        raise ConfigError(
            f"WORLD_SIZE is set but {e.args[0]} is not; start with torchrun or nmt train --nproc"
        ) from None
    device = _rank_device(device, rank, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=WAIT, device_id=device)
        control = dist.new_group(backend="gloo", timeout=WAIT)
    else:
        dist.init_process_group("gloo", timeout=WAIT)
        control = None
    logger = logging.getLogger("nmt_cli")
    level = logger.level
    if rank != 0:
        logger.setLevel(logging.WARNING)
    try:
        yield Dist(rank, world_size, local_rank, device, control)
    except RuntimeError as e:
        if not _lost_contact(e):
            raise
        reason = str(e).splitlines()[0].split("] ", 1)[-1].split(". ")[0][:160]
        raise PeerLostError(
            f"rank {rank}: another rank stopped or crashed, so this one stops too ({reason})"
        ) from None
    finally:
        logger.setLevel(level)
    # Only after a clean run: after a failure, tearing down may wait on the missing ranks.
    dist.destroy_process_group()


def launch(nproc: int, argv: Sequence[str], run_dir: Path) -> None:
    """Run `nmt ARGV` (without --nproc) as `nproc` ranks on this machine, as torchrun does.

    Uses torchrun's own launcher (standalone rendezvous on a free local port, no restarts), so
    the ranks see the same environment as under `torchrun --standalone --nproc-per-node N`.

    Raises:
        NmtError: a rank failed; the message names it, how it ended, and what to do next.
        TrainingInterrupted: a signal stopped the job (the ranks saved a checkpoint).
    """
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ConfigError(f"--nproc must be positive (got {nproc})")
    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc: this process is already a rank of a torchrun job")
    # As torchrun does, but sharing this machine's cores out (it would give each rank one).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    # The agent's own log lines (which rank failed, which it stopped) repeat the one line
    # this function ends with.
    quiet = logging.getLogger("torch.distributed.elastic")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
    )
    try:
        elastic_launch(config, sys.executable)("-m", "nmt_cli", *without_nproc(argv))
    except ChildFailedError as e:
        raise job_failure(e.failures, run_dir) from None
    except SignalException as e:
        raise TrainingInterrupted(
            f"{e.sigval.name}: every rank was stopped{_resume_hint(run_dir)}"
        ) from None


def without_nproc(argv: Sequence[str]) -> list[str]:
    """The command line for each rank: the same, less `--nproc N` / `--nproc=N`."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def job_failure(failures: dict[int, Any], run_dir: Path) -> NmtError:
    """One line for a failed job, naming the rank that failed first (the root cause).

    Ranks that stopped because another one failed (PeerLostError, or torchrun's SIGTERM) are
    consequences, reported only when nothing else failed. A SIGABRT comes next to last: it is
    how gloo ends a rank when a peer's connection drops inside a background thread, and
    torchrun's timestamps are whole seconds, so the rank that really died first often ties.

    Args:
        failures: global rank -> torchrun's ProcessFailure (exitcode, timestamp, signal_name()).
    """

    def likely_consequence(failure: Any) -> int:
        if failure.exitcode in (PeerLostError.exit_code, -signal.SIGTERM):
            return 2
        return 1 if failure.exitcode == -signal.SIGABRT else 0

    rank, first = min(
        failures.items(),
        key=lambda item: (likely_consequence(item[1]), item[1].timestamp, item[0]),
    )
    hint = _resume_hint(run_dir)
    if first.exitcode == TrainingInterrupted.exit_code:  # every rank stopped, as agreed
        return TrainingInterrupted(f"every rank was stopped by a signal{hint}")
    how = (
        f"killed by {first.signal_name()}" if first.exitcode < 0 else f"exit code {first.exitcode}"
    )
    return NmtError(
        f"rank {rank} failed ({how}); see the messages above and {run_dir / 'train.log'}{hint}"
    )


def _resume_hint(run_dir: Path) -> str:
    if (run_dir / "checkpoints" / "last.pt").exists():
        return "; continue with --resume"
    return ""
