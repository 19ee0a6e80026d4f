"""Data parallelism without processes: sharding the batch stream, the launcher's messages."""

from __future__ import annotations

import signal
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nmt_cli.corpus import EncodedSplit
from nmt_cli.data import TrainBatches
from nmt_cli.distributed import PeerLostError, job_failure, process_group, without_nproc
from nmt_cli.train import TrainingInterrupted


def tiny_split(n: int = 60, seed: int = 0) -> EncodedSplit:
    g = torch.Generator().manual_seed(seed)
    src_lengths = torch.randint(1, 12, (n,), generator=g)
    tgt_lengths = torch.randint(1, 12, (n,), generator=g)
    offsets = [torch.cat([torch.zeros(1), lengths.cumsum(0)]).long() for lengths in
               (src_lengths, tgt_lengths)]  # fmt: skip
    src = torch.randint(4, 50, (int(src_lengths.sum()),), generator=g, dtype=torch.int32)
    tgt = torch.randint(4, 50, (int(tgt_lengths.sum()),), generator=g, dtype=torch.int32)
    return EncodedSplit(src, offsets[0], tgt, offsets[1])


def stream(split: EncodedSplit) -> TrainBatches:
    return TrainBatches(split, budget=60, max_len=100, seed=3)  # ~ a dozen batches an epoch


def ids(group: list) -> list[list[int]]:
    return [b.ids.tolist() for b in group]


@pytest.mark.parametrize(("world_size", "size"), [(1, 1), (1, 3), (2, 1), (2, 2), (3, 2)])
def test_ranks_share_out_the_single_stream(world_size: int, size: int) -> None:
    """Update u of W ranks x A batches = batches u*W*A ... of the one stream (across epochs),
    rank r taking the r-th, (r+W)-th, ...: so W ranks x A = 1 process x W*A, batch for batch."""
    split = tiny_split()
    updates = 15  # more than an epoch
    flat = [b.ids.tolist() for b in islice(iter(stream(split)), updates * world_size * size)]
    ranks = [stream(split) for _ in range(world_size)]
    per_rank = [list(islice(s.groups(size, r, world_size), updates)) for r, s in enumerate(ranks)]
    for u in range(updates):
        chunk = flat[u * world_size * size : (u + 1) * world_size * size]
        for r in range(world_size):
            assert ids(per_rank[r][u]) == chunk[r::world_size]
    states = {str(s.state_dict()) for s in ranks}
    assert len(states) == 1  # every rank is at the same place in the stream
    single = stream(split)
    list(islice(iter(single), updates * world_size * size))
    assert ranks[0].state_dict() == single.state_dict()


def test_resume_with_another_number_of_ranks_continues_the_stream() -> None:
    """The sampler state counts batches of the one stream: 2 ranks stop, 1 process resumes."""
    split = tiny_split()
    two = [stream(split) for _ in range(2)]
    for r, s in enumerate(two):
        list(islice(s.groups(1, r, 2), 7))
    one = stream(split)
    one.load_state_dict(two[0].state_dict())
    reference = stream(split)
    expected = list(islice(iter(reference), 14 + 6))[14:]
    assert [g for group in islice(one.groups(2), 3) for g in ids(group)] == [
        b.ids.tolist() for b in expected
    ]


def test_without_nproc() -> None:
    argv = ["-q", "train", "d", "--out", "r", "--nproc", "2", "--set", "a.b=1", "--nproc=4"]
    assert without_nproc(argv) == ["-q", "train", "d", "--out", "r", "--set", "a.b=1"]


def failure(exitcode: int, timestamp: int = 100) -> SimpleNamespace:
    name = signal.Signals(-exitcode).name if exitcode < 0 else "<N/A>"
    return SimpleNamespace(exitcode=exitcode, timestamp=timestamp, signal_name=lambda: name)


def test_job_failure_names_the_rank_that_failed_first(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    # rank 0 saw its peer vanish (exit 3) and torchrun then stopped rank 2: consequences
    failures = {0: failure(PeerLostError.exit_code), 1: failure(-9), 2: failure(-15)}
    assert str(job_failure(failures, tmp_path)) == (
        f"rank 1 failed (killed by SIGKILL); see the messages above and {log}"
    )
    # gloo aborts rank 0 in the same second as rank 1 is killed: the kill is the cause
    failures = {0: failure(-6), 1: failure(-9)}
    assert str(job_failure(failures, tmp_path)).startswith("rank 1 failed (killed by SIGKILL)")
    assert str(job_failure({0: failure(-6), 1: failure(-15)}, tmp_path)).startswith(
        "rank 0 failed (killed by SIGABRT)"
    )
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").touch()
    failures = {0: failure(1, timestamp=101), 1: failure(1, timestamp=100)}
    error = job_failure(failures, tmp_path)
    assert error.exit_code == 1
    assert str(error) == (
        f"rank 1 failed (exit code 1); see the messages above and {log}; continue with --resume"
    )
    interrupted = job_failure({0: failure(130), 1: failure(130)}, tmp_path)
    assert isinstance(interrupted, TrainingInterrupted) and interrupted.exit_code == 130
    assert str(interrupted) == "every rank was stopped by a signal; continue with --resume"


def test_a_single_process_creates_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with process_group(torch.device("cpu")) as dist:
        assert dist is None
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc-per-node 1
    with process_group(torch.device("cpu")) as dist:
        assert dist is None
    assert not torch.distributed.is_initialized()
