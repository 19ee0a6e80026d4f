"""Fine-tuning (`nmt train --init-from`): what a new run takes from a checkpoint, and what it
refuses.

A checkpoint here is a real one: a Trainer on a tiny data folder takes one update (so Adam has
a state) and writes it. No test trains longer than that.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nmt_cli.checkpoint import Checkpoint, save_checkpoint
from nmt_cli.config import Config, load_config
from nmt_cli.errors import CheckpointError, ConfigError, DataError
from nmt_cli.preprocess import preprocess
from nmt_cli.train import InitFrom, Trainer, run_config, train

_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
OLD = [f"{_WORDS[i % 8]} and {_WORDS[(i * 3) % 8]}" for i in range(40)]
NEW = [f"{_WORDS[(i * 5) % 8]} or {_WORDS[i % 8]} {_WORDS[(i * 7) % 8]}" for i in range(30)]
TINY = [
    "model.emb_size=8",
    "model.enc_hidden=16",
    "model.dec_hidden=16",
    "model.attn_hidden=8",
    "train.batch_tokens=200",
    "train.max_steps=50",
    "train.log_every=1000",
]


def make_data(folder: Path, lines: list[str], **kwargs: object) -> Path:
    """A copy task (source = target) preprocessed into folder/data."""
    raw = folder / "raw"
    raw.mkdir(parents=True)
    for split, part in (("train", lines), ("valid", lines[:4])):
        for side in ("src", "tgt"):
            (raw / f"{split}.{side}").write_text("".join(f"{x}\n" for x in part))
    out = folder / "data"
    preprocess("src", "tgt", raw / "train", raw / "valid", out, vocab_size=40, **kwargs)  # type: ignore[arg-type]
    return out


def trainer(config: Config, data: Path, run: Path) -> Trainer:
    return Trainer(config, data, run, "cpu")


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny data folder and a checkpoint of one update on it: (data, checkpoint file)."""
    folder = tmp_path_factory.mktemp("old")
    data = make_data(folder, OLD)
    t = trainer(load_config(None, TINY), data, folder / "run")
    t.state.step = 1
    t.train_step(next(t.groups()))
    path = folder / "step-1.pt"
    save_checkpoint(t.checkpoint(), path)
    return data, path


@pytest.fixture(scope="module")
def new_data(old: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("new"), NEW, tokenizer_from=old[1])


def start(init: InitFrom, data: Path, run: Path, overrides: tuple[str, ...] = ()) -> Trainer:
    """A fine-tuning run's Trainer, as `nmt_cli.train.train` makes it, before its first step."""
    config = run_config(None, list(overrides), run, init=init)
    init.check(config, data)
    t = trainer(config, data, run)
    init.apply(t.model, t.optimizer, t.schedule, t.state, config.train)
    return t


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_weights_are_the_checkpoints_and_the_optimizer_starts_fresh(
    old: tuple[Path, Path], new_data: Path, tmp_path: Path
) -> None:
    init = InitFrom.load(old[1])
    t = start(init, new_data, tmp_path / "ft", ("train.lr=0.01", "model.dropout=0.0"))
    assert same_tensors(t.model.state_dict(), init.checkpoint.model)
    assert t.state.step == 0 and t.optimizer.state_dict()["state"] == {}
    assert t.config.train.lr == 0.01 and t.config.model.dropout == 0.0  # these may change
    assert t.config.model.emb_size == 8  # the shape came from the checkpoint
    t.train_step(next(t.groups()))  # the copied weights are the ones being trained
    assert not same_tensors(t.model.state_dict(), init.checkpoint.model)


def test_keep_optimizer_continues_adam_schedule_and_step(
    old: tuple[Path, Path], new_data: Path, tmp_path: Path
) -> None:
    init = InitFrom.load(old[1], keep_optimizer=True)
    t = start(init, new_data, tmp_path / "ft", ("train.adam_betas=[0.8, 0.9]",))
    assert init.checkpoint.training is not None
    saved = init.checkpoint.training.optimizer["state"]
    kept = t.optimizer.state_dict()["state"]
    assert saved.keys() == kept.keys() and kept
    assert all(torch.equal(saved[k]["exp_avg"], kept[k]["exp_avg"]) for k in saved)
    assert t.state.step == 1
    assert t.optimizer.param_groups[0]["betas"] == (0.8, 0.9)  # the new run's setting


def test_a_data_folder_with_another_tokenizer_is_refused_in_one_line(
    old: tuple[Path, Path], tmp_path: Path
) -> None:
    other = make_data(tmp_path, NEW)  # its own tokenizer, trained on NEW
    init = InitFrom.load(old[1])
    with pytest.raises(DataError) as err:
        train(
            run_config(None, [], tmp_path / "ft", init=init),
            other,
            tmp_path / "ft",
            "cpu",
            init=init,
        )
    message = str(err.value)
    assert "\n" not in message
    assert str(other / "spm.model") in message and str(old[1]) in message
    assert f"nmt preprocess --tokenizer-from {old[1]}" in message
    assert not (tmp_path / "ft").exists()  # refused before the run folder was made


@pytest.mark.parametrize("key", ["model.emb_size=12", "model.cell=gru", "data.reverse_source=true"])
def test_a_config_that_changes_the_model_is_refused_naming_the_key(
    old: tuple[Path, Path], tmp_path: Path, key: str
) -> None:
    config = tmp_path / "c.yaml"
    name, value = key.split("=")
    section, field = name.split(".")
    config.write_text(f"{section}:\n  {field}: {value}\n")
    with pytest.raises(ConfigError, match=rf"^--init-from .*: {name} is .* but the checkpoint has"):
        run_config(config, [], tmp_path / "ft", init=InitFrom.load(old[1]))


def test_keep_optimizer_needs_a_training_checkpoint_and_more_steps(
    old: tuple[Path, Path], tmp_path: Path
) -> None:
    ckpt = InitFrom.load(old[1]).checkpoint
    average = tmp_path / "avg.pt"
    save_checkpoint(Checkpoint(ckpt.config, ckpt.vocab, ckpt.model, ckpt.step), average)
    InitFrom.load(average)  # weights alone are enough for a fresh start
    with pytest.raises(CheckpointError, match="has no optimizer state"):
        InitFrom.load(average, keep_optimizer=True)
    init = InitFrom.load(old[1], keep_optimizer=True)
    with pytest.raises(ConfigError, match=r"train\.max_steps 1 must be larger"):
        run_config(None, ["train.max_steps=1"], tmp_path / "ft", init=init)


def test_a_run_folder_means_its_best_checkpoint_and_resume_excludes_init(
    old: tuple[Path, Path], new_data: Path, tmp_path: Path
) -> None:
    with pytest.raises(CheckpointError, match=r"no best\.pt"):
        InitFrom.load(tmp_path)
    init = InitFrom.load(old[1])
    with pytest.raises(ConfigError, match="continue one with --resume alone"):
        train(init.config(), new_data, tmp_path / "ft", "cpu", resume=True, init=init)
