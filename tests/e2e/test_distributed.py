"""Data-parallel training (issue 6): `nmt train --nproc 2`, two gloo ranks on the CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmt_cli.checkpoint import load_checkpoint

from .conftest import nmt

pytestmark = pytest.mark.e2e

# Dropout draws other masks on other ranks, so the exact comparison trains without it.
NO_DROPOUT = ("--set", "model.dropout=0", "--set", "model.emb_dropout=0")


def train(data_dir: Path, config_file: Path, out: Path, *args: str) -> str:
    result = nmt(
        "train", str(data_dir), "--out", str(out), "--config", str(config_file),
        "--device", "cpu", *args,
    )  # fmt: skip
    return result.stdout


def assert_same_weights(run: Path, other: Path) -> None:
    mine, theirs = load_checkpoint(run).model, load_checkpoint(other).model
    assert mine.keys() == theirs.keys()  # no DDP `module.` prefix
    for name, tensor in mine.items():
        assert torch.allclose(tensor, theirs[name], rtol=0, atol=1e-5), name


def test_two_ranks_equal_one_process_accumulating_two(
    data_dir: Path, config_file: Path, tmp_path: Path
) -> None:
    """K updates of 2 ranks x 1 batch = K updates of 1 process x accumulate 2 (the same two
    batches each), and resuming the 2-rank run in 1 process continues that same run."""
    k = 4
    two, one = tmp_path / "two", tmp_path / "one"
    steps = ("--set", f"train.valid_every={k}", *NO_DROPOUT)
    out = train(data_dir, config_file, two, *steps, "--set", f"train.max_steps={k}", "--nproc", "2")
    assert out.count("steps ") == 1 and "per rank (2 ranks)" in out  # rank 0 reports
    train(
        data_dir, config_file, one, *steps,
        "--set", f"train.max_steps={2 * k}", "--set", "train.accumulate=2",
    )  # fmt: skip
    assert_same_weights(two / "checkpoints/last.pt", one / f"checkpoints/step-{k}.pt")

    resumed = nmt(
        "train", str(data_dir), "--out", str(two), "--resume", "--device", "cpu",
        "--set", f"train.max_steps={2 * k}", "--set", "train.accumulate=2",
    )  # fmt: skip
    assert f"resumed from step {k}" in resumed.stderr
    assert_same_weights(two / "checkpoints/last.pt", one / f"checkpoints/step-{2 * k}.pt")


def children(pid: int) -> dict[int, int]:
    """Global rank -> pid of the ranks that process `pid` started (read from /proc)."""
    ranks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # gone, or not ours
        rank = [v[5:] for v in env if v.startswith(b"RANK=")]
        if parent == pid and rank:
            ranks[int(rank[0])] = int(entry.name)
    return ranks


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks in /proc")
def test_a_rank_that_dies_ends_the_job_and_resume_continues(
    data_dir: Path, config_file: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "nmt_cli", "train", str(data_dir), "--out", str(run),
        "--config", str(config_file), "--device", "cpu", "--nproc", "2",
        "--set", "train.max_steps=5000", "--set", "train.valid_every=5",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (run / "checkpoints" / "last.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
        os.kill(children(proc.pid)[1], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # the ranks run in sessions of their own: stop them first
            for pid in children(proc.pid).values():
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"nmt: error: rank 1 failed (killed by SIGKILL); see the messages above and "
        f"{run / 'train.log'}; continue with --resume"
    ), stderr
    step = load_checkpoint(run / "checkpoints" / "last.pt").step
    resumed = nmt(
        "train", str(data_dir), "--out", str(run), "--resume", "--device", "cpu",
        "--nproc", "2", "--set", f"train.max_steps={step + 3}",
    )  # fmt: skip
    assert f"resumed from step {step}" in resumed.stderr
    assert load_checkpoint(run / "checkpoints" / "last.pt").step == step + 3
