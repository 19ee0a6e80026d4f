"""The checkpoint file: one typed `Checkpoint`, written atomically, read back with checks.

This module is the only place that knows how a checkpoint is laid out on disk. Every file is
written to a temporary name, fsynced and renamed into place, so a kill at any moment leaves
either the old file or the new one, never half of one. Loading checks every record's CRC-32,
the format version and every key the `Checkpoint` needs, so a truncated, damaged, foreign or
incomplete file is a one-line `CheckpointError`, never silently wrong weights.

On disk a checkpoint is one flat dict (format 1, unchanged since the first release, so files
written before the typed `Checkpoint` still load, and files written now load in older nmt):
`format_version`, `config`, `vocab`, `model`, `step`, optionally `score` and `averaged_from`,
and, when it can resume training, `optimizer`, `schedule`, `sampler`, `best_score`,
`bad_validations`, `elapsed`, `train_seconds`, `train_tokens` and `rng`.

Scores are "higher is better" everywhere (the manifest, `best_score`, the schedule's plateau):
perplexity is stored as -ppl. `score_from_metric` and `metric_from_score` are the one place
that sign lives.
"""

from __future__ import annotations

import errno
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nmt_cli.errors import CheckpointError
from nmt_cli.hints import missing_run_folder, unknown_checkpoint

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TrainingState:
    """What a resumed run needs beyond the weights to continue exactly where it stopped.

    Attributes:
        optimizer: the optimizer's `state_dict`.
        schedule: the learning-rate schedule's `state_dict`.
        sampler: the batch sampler's `state_dict` (its position and RNG).
        best_score: the best validation score so far (higher is better), None before any.
        bad_validations: validations since the best one (early-stopping patience).
        elapsed: wall-clock seconds the run has taken, over all its processes.
        train_seconds: seconds spent in training steps (for the tokens/s figure).
        train_tokens: target tokens trained on.
        torch_rng: `torch.get_rng_state()`, a uint8 tensor.
        cuda_rng: `torch.cuda.get_rng_state_all()`, or None without CUDA.
    """

    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    sampler: dict[str, Any]
    best_score: float | None
    bad_validations: int
    elapsed: float
    train_seconds: float
    train_tokens: int
    torch_rng: Tensor
    cuda_rng: list[Tensor] | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A model with everything needed to translate with it and, optionally, to resume it.

    Attributes:
        config: the resolved config, as `Config.to_dict()` gives it.
        vocab: the tokenizers, as `Vocab.to_state()` gives them (`src_spm`/`tgt_spm` bytes,
            `joint`, `src_lang`, `tgt_lang`).
        model: the model's `state_dict`.
        step: the update count the weights were taken at (an average: the largest).
        training: the state to resume training; None for a translation-only checkpoint
            (e.g. one written by `nmt average`).
        score: the validation score it was saved with (higher is better), if validated.
        averaged_from: the checkpoints whose mean the weights are, for an average.
    """

    config: dict[str, Any]
    vocab: dict[str, Any]
    model: dict[str, Tensor]
    step: int
    training: TrainingState | None = None
    score: float | None = None
    averaged_from: list[str] | None = None


def score_from_metric(value: float, stop_metric: str) -> float:
    """The score (higher is better) of a validation metric: BLEU as is, perplexity as -ppl."""
    return -value if stop_metric == "ppl" else value


def metric_from_score(score: float, stop_metric: str) -> float:
    """The metric's own value (BLEU, or perplexity: lower is better) of a score."""
    return -score if stop_metric == "ppl" else score


def _to_dict(ckpt: Checkpoint) -> dict[str, Any]:
    """The on-disk layout (see the module docstring) of a checkpoint."""
    state: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "config": ckpt.config,
        "vocab": ckpt.vocab,
        "model": ckpt.model,
        "step": ckpt.step,
    }
    if ckpt.score is not None:
        state["score"] = ckpt.score
    if ckpt.averaged_from is not None:
        state["averaged_from"] = ckpt.averaged_from
    t = ckpt.training
    if t is not None:
        state.update(
            optimizer=t.optimizer,
            schedule=t.schedule,
            sampler=t.sampler,
            best_score=t.best_score,
            bad_validations=t.bad_validations,
            elapsed=t.elapsed,
            train_seconds=t.train_seconds,
            train_tokens=t.train_tokens,
            rng={"torch": t.torch_rng, "cuda": t.cuda_rng},
        )
    return state


def _from_dict(state: dict[str, Any], path: Path) -> Checkpoint:
    """The `Checkpoint` of an on-disk dict of this format version.

    Raises:
        CheckpointError: a key is missing or holds the wrong kind of value.
    """

    def need(where: dict[str, Any], key: str, kind: type | tuple[type, ...], name: str) -> Any:
        if key not in where:
            raise CheckpointError(f"{path}: incomplete checkpoint (no {name})")
        if not isinstance(where[key], kind):
            kind_name = type(where[key]).__name__
            raise CheckpointError(f"{path}: damaged checkpoint ({name} is a {kind_name})")
        return where[key]

    vocab = need(state, "vocab", dict, "vocab")
    for key, kind in (("src_spm", bytes), ("tgt_spm", bytes), ("joint", bool)):
        need(vocab, key, kind, f"vocab.{key}")
    training = None
    if "optimizer" in state:  # else translation-only
        rng = need(state, "rng", dict, "rng")
        training = TrainingState(
            optimizer=need(state, "optimizer", dict, "optimizer"),
            schedule=need(state, "schedule", dict, "schedule"),
            sampler=need(state, "sampler", dict, "sampler"),
            best_score=need(state, "best_score", (int, float, type(None)), "best_score"),
            bad_validations=need(state, "bad_validations", int, "bad_validations"),
            elapsed=need(state, "elapsed", (int, float), "elapsed"),
            train_seconds=need(state, "train_seconds", (int, float), "train_seconds"),
            train_tokens=need(state, "train_tokens", int, "train_tokens"),
            torch_rng=need(rng, "torch", Tensor, "rng.torch"),
            cuda_rng=rng.get("cuda"),
        )
    return Checkpoint(
        config=need(state, "config", dict, "config"),
        vocab=vocab,
        model=need(state, "model", dict, "model"),
        step=need(state, "step", int, "step"),
        training=training,
        score=state.get("score"),
        averaged_from=state.get("averaged_from"),
    )


def fsync_dir(path: Path) -> None:
    """Make a rename inside the folder `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call `write(file)` on a temp file beside `path`, fsync, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_checkpoint(ckpt: Checkpoint, path: Path) -> None:
    """Atomically write `ckpt` to `path`; an OSError (e.g. a full disk) passes through."""
    state = _to_dict(ckpt)
    atomic_write_bytes(path, lambda f: _torch_save(state, f))


def _torch_save(state: dict[str, Any], file: Any) -> None:
    """`torch.save`, with a failed write raised as the OSError it is.

    torch reports a write that failed (a full disk) as a RuntimeError ("unexpected pos");
    flushing the file raises the operating system's own reason, if there is one.
    """
    try:
        torch.save(state, file)
    except RuntimeError as e:
        file.flush()  # the OSError (e.g. ENOSPC) of the bytes torch could not write
        raise OSError(errno.EIO, f"torch.save failed: {_reason(e)}") from None


def save_checkpoint(ckpt: Checkpoint, path: Path) -> None:
    """Atomically write `ckpt` to `path`.

    Raises:
        CheckpointError: the file cannot be written.
    """
    try:
        write_checkpoint(ckpt, Path(path))
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write checkpoint: {e.strerror or e}") from None


def _reason(e: BaseException) -> str:
    return str(e).splitlines()[0][:120] if str(e).strip() else type(e).__name__


def _check_integrity(path: Path) -> None:
    """Check every record's CRC-32 (torch.save writes them; torch.load never reads them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except MemoryError:
        raise
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # zipfile raises many types for damaged archives
        raise CheckpointError(f"{path}: not a valid nmt checkpoint ({_reason(e)})") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint ({damaged} fails its CRC check)")


def _check_version(state: Any, path: Path) -> None:
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path}: not an nmt checkpoint")
    version = state["format_version"]
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise CheckpointError(
            f"{path}: checkpoint format {version}, this nmt reads format {FORMAT_VERSION}; "
            + ("it was written by a newer nmt" if newer else "it cannot be converted")
        )


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint safely (weights_only: no code runs from the file) and check it.

    Args:
        path: the .pt file.
        map_location: where its tensors go (the weights are memory-mapped on the CPU).

    Raises:
        CheckpointError: a missing, truncated or damaged file, not a checkpoint, another
            format version, or a key missing.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    _check_integrity(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except MemoryError:
        raise
    except Exception as e:  # torch raises many types for damaged or foreign files
        raise CheckpointError(f"{path}: not a valid nmt checkpoint ({_reason(e)})") from None
    _check_version(state, path)
    return _from_dict(state, path)


def resolve_checkpoint(path: Path, which: str = "best") -> Path:
    """A run folder + best|last|step-N.pt, or a checkpoint file, -> the .pt file to load."""
    path = Path(path)
    if path.is_dir():
        if which not in ("best", "last"):
            candidate = Path(which)
            if not (candidate.is_absolute() or candidate.exists()):
                candidate = path / "checkpoints" / which
            if not candidate.exists() and (path / "checkpoints").is_dir():
                raise unknown_checkpoint(path, which)  # a typo: --checkpoint bset
            return candidate
        candidate = path / "checkpoints" / f"{which}.pt"
        if not candidate.is_file():
            raise missing_run_folder(path, which)
        return candidate
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or checkpoint file")
    return path
