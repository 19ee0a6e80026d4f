"""The run folder of `nmt train`: new or resumed, its files, and what a resume may change.

A run folder holds `config.yaml` (resolved), the tokenizer(s), `train.log`, `metrics.jsonl`
and `checkpoints/` (see `CheckpointManager`). Every file is written atomically, like the
checkpoints, because `--resume` reads them back.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from nmt_cli.checkpoint import Checkpoint, atomic_write_bytes
from nmt_cli.checkpoint_manager import Newest, find_newest
from nmt_cli.config import Config, from_dict, load_config
from nmt_cli.corpus import Vocab
from nmt_cli.errors import ConfigError


def saved_config(run_dir: Path) -> Config:
    """The resolved config of an existing run: the base that `--resume` overrides apply to."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"--resume: {path} does not exist (nothing to resume)")
    return load_config(path)


def check_out(run_dir: Path, data_dir: Path) -> None:
    """Refuse a run folder that is a file, or the data folder itself (whose files a run's
    tokenizer and checkpoints would sit among or replace)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir}: is a file, not a run folder")
    if run_dir.exists() and data_dir.exists() and os.path.samefile(run_dir, data_dir):
        raise ConfigError(f"--out {run_dir}: is the data folder; write the run to another folder")


def resume_state(run_dir: Path, resume: bool) -> Newest | None:
    """The newest complete checkpoint to resume from, or None for a new run (folder created).

    Nothing in the folder changes here: after a crash the newest step file may not be
    `last.pt` yet, and only once `check_resume` and `check_writable` accept it does
    `CheckpointManager.adopt` register it. A new run refuses a folder that already has
    checkpoints.
    """
    folder = run_dir / "checkpoints"
    if resume:
        if not folder.is_dir():
            raise ConfigError(f"--resume: {folder} does not exist (nothing to resume)")
        newest = find_newest(folder)
        if newest is None:
            raise ConfigError(f"--resume: no checkpoint in {folder} (nothing to resume)")
        return newest
    if folder.is_dir() and any(folder.glob("*.pt")):
        raise ConfigError(f"{run_dir} already has checkpoints; use --resume or another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    return None


def check_writable(run_dir: Path) -> None:
    """Refuse to resume in a folder this process cannot write (before anything changes)."""
    for folder in (run_dir, run_dir / "checkpoints"):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"--resume: {folder}: cannot write (read-only); nothing changed")


def check_resume(config: Config, ckpt: Checkpoint, vocab: Vocab, data_dir: Path) -> None:
    """A resumed run must keep the checkpoint's data, model and vocabulary.

    The train and decode sections may change (e.g. a larger train.max_steps). A
    translation-only checkpoint (no training state) cannot be resumed.
    """
    if ckpt.training is None:
        raise ConfigError(
            f"--resume: the checkpoint of step {ckpt.step} has no training state "
            "(a translation-only checkpoint, e.g. an average)"
        )
    saved = from_dict(ckpt.config)
    for section in ("data", "model"):
        mine, theirs = getattr(config, section).__dict__, getattr(saved, section).__dict__
        for key in mine:
            if mine[key] != theirs[key]:
                raise ConfigError(
                    f"--resume: {section}.{key} is {mine[key]!r} but the checkpoint was "
                    f"trained with {theirs[key]!r}"
                )
    if (ckpt.vocab["src_spm"], ckpt.vocab["tgt_spm"]) != (
        vocab.src.model_bytes,
        vocab.tgt.model_bytes,
    ):
        raise ConfigError(f"--resume: {data_dir} has another vocabulary than the checkpoint")


def prepare(run_dir: Path, config: Config, vocab: Vocab, step: int) -> None:
    """Clean up after a killed process, then write config.yaml and the tokenizers.

    `step` is the step the run starts from (0 for a new run).
    """
    for tmp in run_dir.glob(".*.tmp"):  # .NAME.PID.tmp: left by a killed process
        tmp.unlink(missing_ok=True)
    trim_metrics(run_dir, step)
    config_bytes = config.to_yaml().encode()
    atomic_write_bytes(run_dir / "config.yaml", lambda f: f.write(config_bytes))
    for side, tok in (("src", vocab.src), ("tgt", vocab.tgt)):
        name = "spm.model" if vocab.joint else f"spm.{side}.model"
        atomic_write_bytes(run_dir / name, lambda f, tok=tok: f.write(tok.model_bytes))


def trim_metrics(run_dir: Path, step: int) -> None:
    """Drop metrics rows after `step`, the step this run starts from.

    A kill can land between a validation's row and its checkpoint; the resumed run
    validates that step again, so without this the row would appear twice.
    """
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):  # e.g. a line cut short by a kill
            continue
        if isinstance(row_step, int) and row_step <= step:
            kept.append(line + "\n")
    text = "".join(kept).encode()
    atomic_write_bytes(path, lambda f: f.write(text))


def log_to_file(run_dir: Path) -> logging.Handler:
    """Send the nmt_cli logs to RUN/train.log too; the caller removes the handler at the end."""
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    logging.getLogger("nmt_cli").addHandler(handler)
    return handler
