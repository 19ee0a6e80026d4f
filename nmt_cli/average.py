"""Checkpoint averaging: the mean of several checkpoints' weights, as one small checkpoint.

Averaging the last few checkpoints of a run smooths the noise of the final updates and
usually gains some BLEU for free. The result is a translation-only checkpoint: the config
and tokenizers of the first input (so `nmt translate` can load it), no training state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nmt_cli.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from nmt_cli.checkpoint_manager import MANIFEST, read_manifest
from nmt_cli.errors import CheckpointError, ConfigError, NmtError
from nmt_cli.textio import check_not_input


def run_checkpoints(run_dir: Path, which: str, count: int) -> list[Path]:
    """The `count` last (by step) or best (by score) step checkpoints kept in a run folder."""
    if count < 1:
        raise ConfigError(f"--{which} must be a positive number of checkpoints (got {count})")
    folder = Path(run_dir) / "checkpoints"
    manifest = read_manifest(folder / MANIFEST)
    if manifest is None:
        raise CheckpointError(f"{run_dir}: no checkpoints/{MANIFEST} (is it a run folder?)")
    names = manifest.last[::-1] if which == "last" else tuple(b.file for b in manifest.best)
    if len(names) < count:
        raise CheckpointError(
            f"{run_dir}: only {len(names)} {which} checkpoints are kept, {count} asked "
            f"(raise train.keep_{which})"
        )
    return [folder / n for n in names[:count]]


def check_out(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse an `--out` that is an input, or a file a run's manifest still lists.

    Replacing a listed step file (or `best.pt`/`last.pt`, hard links to them) would make a
    later `--resume` or `--last N` read the average as if the run had written it.

    Raises:
        CheckpointError: `out` is one of `inputs` or a run's checkpoint (through links).
    """
    try:
        check_not_input(out, inputs)
    except NmtError as e:
        raise CheckpointError(str(e)) from None
    folder = Path(os.path.realpath(out)).parent
    manifest = read_manifest(folder / MANIFEST) if (folder / MANIFEST).is_file() else None
    if manifest is None:
        return
    listed = [folder / name for name in (*manifest.kept(), "best.pt", "last.pt")]
    if Path(os.path.realpath(out)) in listed or any(
        os.path.exists(p) and os.path.exists(out) and os.path.samefile(out, p) for p in listed
    ):
        raise CheckpointError(
            f"{out}: is a checkpoint of the run in {folder.parent}; write the average elsewhere"
        )


def average_checkpoints(paths: Sequence[Path], out: Path) -> dict[str, object]:
    """Average the weights of `paths` into `out`; returns a short summary."""
    if not paths:
        raise CheckpointError("nothing to average: give at least one checkpoint")
    check_out(Path(out), paths)
    first = load_checkpoint(paths[0])
    total = {k: v.double() for k, v in first.model.items()}
    steps = [first.step]
    for path in paths[1:]:
        ckpt = load_checkpoint(path)
        if ckpt.config.get("model") != first.config.get("model") or ckpt.vocab != first.vocab:
            raise CheckpointError(
                f"{path}: another model or vocabulary than {paths[0]}; cannot average"
            )
        if ckpt.model.keys() != total.keys():
            raise CheckpointError(f"{path}: other weights than {paths[0]}; cannot average")
        for key, value in ckpt.model.items():
            total[key] += value.double()
        steps.append(ckpt.step)
    model = {k: (v / len(paths)).to(first.model[k].dtype) for k, v in total.items()}
    averaged = Checkpoint(
        config=first.config,
        vocab=first.vocab,
        model=model,
        step=max(steps),
        averaged_from=[str(p) for p in paths],
    )
    save_checkpoint(averaged, Path(out))
    return {"out": str(out), "inputs": len(paths), "steps": steps}
