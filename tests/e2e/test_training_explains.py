"""Training that explains itself (issue 23): a signal cuts a validation short, the time budget
holds the whole run (validation and the last save included), a run too short to be useful is
warned about, a resume without budget left says why, and the end is reported once."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import demo_data
import pytest

from nmt_cli.checkpoint import load_checkpoint
from nmt_cli.config import load_config
from nmt_cli.train import train

from .conftest import nmt

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def long_valid_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny training set and a valid split long enough that validating takes a while."""
    text = tmp_path_factory.mktemp("long-valid-text")
    demo_data.write_splits(text, seed=4, n_train=300, n_valid=3000, n_test=0)
    out = tmp_path_factory.mktemp("long-valid-data")
    nmt(
        "preprocess", "--src", "src", "--tgt", "tgt", "--train", str(text / "train"),
        "--valid", str(text / "valid"), "--out", str(out), "--vocab-size", "100",
        "--model-type", "bpe",
    )  # fmt: skip
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_validation_stops_it_saves_and_exits_130(
    long_valid_data: Path, config_file: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "nmt_cli", "train", str(long_valid_data), "--out", str(run),
        "--config", str(config_file), "--device", "cpu", "--set", "train.max_steps=1",
        "--set", "train.log_every=1", "--set", "train.valid_beam=5",
        "--set", "decode.batch_size=8",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics, deadline = run / "metrics.jsonl", time.monotonic() + 120
    # The training row of step 1 is written just before its validation starts.
    while not (metrics.exists() and metrics.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    waited = time.monotonic() - sent
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"validation at step 1 cut short ({sig.name})" in stderr
    last = re.split(r"[\r\n]+", stderr.strip())[-1]
    assert last == (
        f"nmt: error: {sig.name}: stopped during the validation at step 1; checkpoint saved, "
        "continue with --resume"
    )
    assert load_checkpoint(run / "checkpoints" / "last.pt").step == 1
    # 3,000 sentences at beam 5 take far longer than the one batch the signal waited for.
    assert waited < 30, waited
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert all("valid_bleu" not in row for row in rows)  # no score from a cut validation


def test_the_budget_holds_the_whole_run_and_a_short_run_is_warned_about(
    data_dir: Path, config_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nmt_cli")  # as the command line sets it
    # Kernels are compiled on their first use, once per process: warm them up first, so that
    # the budget is spent on the run's own work, as in any run longer than this test's.
    train(load_config(config_file, ["train.max_steps=3"]), data_dir, tmp_path / "warm", "cpu")
    budget_s = 20.0
    config = load_config(
        config_file,
        [f"train.max_minutes={budget_s / 60}", "train.max_steps=1000000", "train.valid_every=100"],
    )
    start = time.perf_counter()
    result = train(config, data_dir, tmp_path / "run", device="cpu")
    took = time.perf_counter() - start
    assert result.stopped_because == "max_minutes" and result.steps > 0
    assert took <= budget_s, f"{took:.1f} s for a {budget_s:.0f} s budget"
    log = (tmp_path / "run" / "train.log").read_text()
    warned = f"training ended after {result.steps:,} updates (max_minutes)" in log
    assert warned == (result.steps < 1000), log
    assert log.count(" done: steps ") == 1
    # A resume with a budget the run has used up refuses, and says the budget is cumulative.
    again = nmt(
        "train", str(data_dir), "--out", str(tmp_path / "run"), "--resume",
        "--set", "train.max_minutes=0.2", check=False,
    )  # fmt: skip
    assert again.returncode != 0 and "Traceback" not in again.stderr
    assert "train.max_minutes=0.2 is used up" in again.stderr
    assert "the budget counts the whole run" in again.stderr


def test_the_end_of_a_run_is_reported_once(run_dir: Path) -> None:
    """train.log ends with the summary, in the format the command prints."""
    log = (run_dir / "train.log").read_text()
    assert re.search(r" done: steps 60 \(max_steps\), [\d.]+ min, [\d,]+ target tokens/s", log)


def test_the_command_prints_one_done_line(
    data_dir: Path, config_file: Path, tmp_path: Path
) -> None:
    result = nmt(
        "train", str(data_dir), "--out", str(tmp_path / "run"), "--config", str(config_file),
        "--device", "cpu", "--set", "train.max_steps=4", "--set", "train.valid_every=4",
    )  # fmt: skip
    assert re.fullmatch(
        r"steps 4 \(max_steps\), [\d.]+ min, [\d,]+ target tokens/s, best valid bleu [\d.]+\n",
        result.stdout,
    )
    assert "done" not in result.stderr and "steps 4 (" not in result.stderr


def test_the_best_mark_follows_the_stop_metric(
    data_dir: Path, config_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nmt_cli")  # as the command line sets it
    config = load_config(
        config_file, ["train.max_steps=2", "train.valid_every=2", "train.stop_metric=ppl"]
    )
    train(config, data_dir, tmp_path / "run", device="cpu")
    log = (tmp_path / "run" / "train.log").read_text()
    # the first validation is the best so far, by perplexity: BLEU is not what was judged
    assert re.search(r"validation at step 2: ppl [\d.]+ \(best\) BLEU [\d.]+, ", log), log
