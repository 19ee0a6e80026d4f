"""Faults during training (issue 5): kills, signals, non-finite losses, a full disk, OOM.

The kill -9 experiment is benchmarks/reliability.py (20 trials by hand); here it runs 3.
Faults that cannot be caused for real on a CPU are injected in-process into `Trainer`.
"""

from __future__ import annotations

import errno
import importlib
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import nmt_cli.checkpoint as checkpoint_module
import nmt_cli.training.update as update_module
from nmt_cli.checkpoint import load_checkpoint
from nmt_cli.config import Config, load_config
from nmt_cli.errors import CheckpointError, NmtError
from nmt_cli.train import Trainer

from .conftest import ROOT, nmt

pytestmark = pytest.mark.e2e


def tiny(config_file: Path, *overrides: str) -> Config:
    return load_config(config_file, ["train.log_every=1", *overrides])


def temp_files(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if p.name.endswith(".tmp")]


# ---- kill -9 -----------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_then_resume_loses_nothing(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every checkpoint loads after each kill, every resume starts from the newest complete
    checkpoint (asserted inside run_trial), and the final weights and validation rows equal
    an uninterrupted run's, bit for bit."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    reliability = importlib.import_module("reliability")
    summary = reliability.run_trials(data_dir, tmp_path, trials=3, kills=1, seed=5, log=False)
    assert summary["kills"] == 3
    assert summary["all_weights_equal"] and summary["all_metrics_equal"], summary
    for trial in summary["per_trial"]:
        assert trial["equal_weights"] and trial["equal_metrics"]


# ---- SIGTERM / SIGINT --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_writes_a_checkpoint_and_exits_130(
    data_dir: Path, config_file: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "nmt_cli", "train", str(data_dir), "--out", str(run),
        "--config", str(config_file), "--device", "cpu",
        "--set", "train.max_steps=100000", "--set", "train.valid_every=100000",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    log = run / "train.log"
    while not (log.exists() and " step 10 loss" in log.read_text()):  # the first log line
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"{sig.name} received: saving a checkpoint after this step" in stderr
    lines = re.split(r"[\r\n]+", stderr)  # the progress bar redraws with \r
    pattern = (
        rf"nmt: error: {sig.name}: stopped at step (\d+); checkpoint saved, continue with --resume"
    )
    stopped = re.fullmatch(pattern, lines[-1] or lines[-2])
    assert stopped, stderr
    step = int(stopped.group(1))
    assert load_checkpoint(run / "checkpoints" / "last.pt").step == step >= 10
    assert temp_files(run) == []
    resumed = nmt(
        "train",
        str(data_dir),
        "--out",
        str(run),
        "--resume",
        "--set",
        f"train.max_steps={step + 2}",
    )
    assert f"resumed from step {step}" in resumed.stderr
    assert load_checkpoint(run / "checkpoints" / "last.pt").step == step + 2


# ---- NaN / inf ---------------------------------------------------------------------------


def poison_loss(monkeypatch: pytest.MonkeyPatch, trainer: Trainer, steps: dict[int, float]) -> None:
    """Make the training loss of some steps non-finite: NaN (NaN gradients too) or +inf
    (added: the gradients stay finite, so only the loss check can catch it)."""
    real = update_module.generator_loss

    def generator_loss(*args: Any, **kwargs: Any) -> torch.Tensor:
        loss = real(*args, **kwargs)
        value = steps.get(trainer.state.step)
        if value is None or not torch.is_grad_enabled():  # validation stays clean
            return loss
        return loss * value if math.isnan(value) else loss + value

    monkeypatch.setattr(update_module, "generator_loss", generator_loss)


def test_non_finite_loss_skips_the_update_and_counts_it(
    data_dir: Path,
    config_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = tiny(config_file, "train.max_steps=6", "train.valid_every=6")
    trainer = Trainer(config, data_dir, tmp_path / "run", device="cpu")
    poison_loss(monkeypatch, trainer, {2: math.nan, 4: math.inf})
    changed: dict[int, tuple[bool, bool]] = {}
    real_step = trainer.train_step

    def train_step(group: Any) -> torch.Tensor:
        before = [p.detach().clone() for p in trainer.model.parameters()]
        total = real_step(group)
        after = list(trainer.model.parameters())
        moved = any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
        changed[trainer.state.step] = (moved, math.isfinite(total.item()))
        return total

    monkeypatch.setattr(trainer, "train_step", train_step)
    caplog.set_level(logging.INFO, logger="nmt_cli")
    result = trainer.train()
    assert result.steps == 6
    assert changed == {
        1: (True, True),
        2: (False, False),  # skipped
        3: (True, True),
        4: (False, False),  # skipped
        5: (True, True),
        6: (True, True),
    }
    adam_steps = {float(s["step"]) for s in trainer.optimizer.state.values()}
    assert adam_steps == {4.0}  # the skipped updates did not advance Adam either
    messages = [r.getMessage() for r in caplog.records]
    assert "2 updates skipped so far (non-finite loss or gradients)" in messages
    for name, tensor in load_checkpoint(tmp_path / "run/checkpoints/last.pt").model.items():
        assert torch.isfinite(tensor).all(), name


def test_non_finite_losses_in_a_row_stop_training(
    data_dir: Path, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny(config_file, "train.max_steps=30", "train.valid_every=4", "train.max_bad_steps=3")
    run = tmp_path / "run"
    trainer = Trainer(config, data_dir, run, device="cpu")
    poison_loss(monkeypatch, trainer, {step: math.nan for step in range(5, 31)})
    with pytest.raises(NmtError) as caught:
        trainer.train()
    message = str(caught.value)
    assert message.startswith("training diverged: 3 non-finite losses in a row at step 7; ")
    assert f"the last good checkpoint is {run / 'checkpoints' / 'last.pt'}" in message
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last.step == 4
    for name, tensor in trainer.model.state_dict().items():  # steps 5-7 changed nothing
        assert torch.equal(tensor, last.model[name]), name


# ---- disk full ---------------------------------------------------------------------------


def test_disk_full_while_saving_a_checkpoint(
    data_dir: Path, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny(config_file, "train.max_steps=6", "train.valid_every=2")
    run = tmp_path / "run"
    real_save = torch.save
    calls = []

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:  # the step-4 checkpoint: half written, then the disk is full
            f.write(b"PK\x03\x04 part of a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", save)
    with pytest.raises(CheckpointError) as caught:
        Trainer(config, data_dir, run, device="cpu").train()
    folder = run / "checkpoints"
    assert str(caught.value) == (
        f"{folder / 'step-4.pt'}: cannot write checkpoint: No space left on device; "
        f"{folder / 'last.pt'} is the last complete checkpoint"
    )
    monkeypatch.undo()
    assert temp_files(run) == []
    assert sorted(p.name for p in folder.glob("*.pt")) == ["best.pt", "last.pt", "step-2.pt"]
    assert load_checkpoint(folder / "last.pt").step == 2
    result = Trainer(config, data_dir, run, device="cpu", resume=True).train()  # space again
    assert result.steps == 6 and load_checkpoint(folder / "last.pt").step == 6


# ---- CUDA out of memory ------------------------------------------------------------------


def inject_oom(monkeypatch: pytest.MonkeyPatch, trainer: Trainer, limit: int, where: str) -> None:
    """Batches of more than `limit` sentences raise torch.OutOfMemoryError in the forward
    pass, or in the backward pass after some gradients were already accumulated."""
    real_forward = trainer.model.forward

    def oom(*_: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")

    def forward(src: torch.Tensor, *args: Any) -> torch.Tensor:
        if src.size(0) > limit and where == "forward":
            oom()
        outputs = real_forward(src, *args)
        if src.size(0) > limit and where == "backward":
            outputs.register_hook(oom)  # runs after the output layer's gradients are added
        return outputs

    monkeypatch.setattr(trainer.model, "forward", forward)


@pytest.mark.parametrize("where", ["forward", "backward"])
@pytest.mark.parametrize("accumulate", [1, 2])
def test_out_of_memory_splits_the_batch_and_retries(
    data_dir: Path,
    config_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    where: str,
    accumulate: int,
) -> None:
    """The update equals the one without the fault (up to float summation order)."""
    config = tiny(
        config_file, "model.dropout=0", "model.emb_dropout=0", f"train.accumulate={accumulate}"
    )
    plain = Trainer(config, data_dir, tmp_path / "plain", device="cpu")
    faulty = Trainer(config, data_dir, tmp_path / "faulty", device="cpu")
    group = next(plain.groups())
    limit = max(len(b) for b in group) // 3  # the largest batch is split twice
    inject_oom(monkeypatch, faulty, limit, where)
    caplog.set_level(logging.WARNING, logger="nmt_cli")
    total = faulty.train_step(group)
    expected = plain.train_step(group)
    assert torch.allclose(total, expected, rtol=1e-5)
    warnings = [r.getMessage() for r in caplog.records if "out of device memory" in r.getMessage()]
    assert len(warnings) >= 2 and "split in two and retried" in warnings[0]
    for p, q in zip(plain.model.parameters(), faulty.model.parameters(), strict=True):
        a, b = plain.optimizer.state[p], faulty.optimizer.state[q]
        assert torch.equal(a["step"], b["step"])
        assert torch.allclose(a["exp_avg"], b["exp_avg"], rtol=1e-4, atol=1e-9)  # = 0.1 x grad


def test_out_of_memory_on_one_sentence_is_a_clear_error(
    data_dir: Path, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Trainer(tiny(config_file), data_dir, tmp_path / "run", device="cpu")
    inject_oom(monkeypatch, trainer, 0, "forward")
    with pytest.raises(NmtError, match="out of device memory at step 0 on a single sentence pair"):
        trainer.train_step(next(trainer.groups()))
