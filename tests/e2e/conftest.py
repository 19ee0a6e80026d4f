"""Shared fixtures: a tiny synthetic corpus, preprocessed, and a briefly trained run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

import demo_data  # noqa: E402

TINY_CONFIG = """\
model:
  emb_size: 32
  enc_hidden: 64
  dec_hidden: 64
  attn_hidden: 32
  dropout: 0.1
  emb_dropout: 0.1
train:
  batch_tokens: 1200
  lr: 0.003
  max_steps: 60
  valid_every: 30
  log_every: 10
decode:
  beam: 3
  batch_size: 16
"""


def nmt(
    *args: str, input: str | bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the real command line (`python -m nmt_cli`)."""
    text = not isinstance(input, bytes)
    result = subprocess.run(
        [sys.executable, "-m", "nmt_cli", *args],
        input=input, capture_output=True, text=text, timeout=300,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"nmt {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw synthetic text: train/valid/test .src/.tgt."""
    out = tmp_path_factory.mktemp("corpus")
    demo_data.write_splits(out, seed=3, n_train=1500, n_valid=60, n_test=40)
    return out


@pytest.fixture(scope="session")
def data_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    nmt(
        "preprocess", "--src", "src", "--tgt", "tgt", "--train", str(corpus / "train"),
        "--valid", str(corpus / "valid"), "--test", str(corpus / "test"), "--out", str(out),
        "--vocab-size", "100", "--model-type", "bpe",
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture(scope="session")
def run_dir(data_dir: Path, config_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    nmt("train", str(data_dir), "--out", str(out), "--config", str(config_file), "--device", "cpu")
    return out
