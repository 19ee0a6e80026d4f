"""Checkpoint averaging: the mean of several checkpoints' weights, as one small checkpoint.

Averaging the last few checkpoints of a run smooths the noise of the final updates and
usually gains some BLEU for free. The result keeps the config and tokenizers of the first
input (so `nmt translate` can load it) but no optimizer state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from nmt_cli.checkpoint import load_checkpoint, save_checkpoint
from nmt_cli.errors import CheckpointError


def run_checkpoints(run_dir: Path, which: str, count: int) -> list[Path]:
    """The `count` last (by step) or best (by score) step checkpoints kept in a run folder."""
    manifest_path = Path(run_dir) / "checkpoints" / "manifest.json"
    if not manifest_path.is_file():
        raise CheckpointError(f"{run_dir}: no checkpoints/manifest.json (is it a run folder?)")
    manifest = json.loads(manifest_path.read_text())
    names = manifest["last"][::-1] if which == "last" else [b["file"] for b in manifest["best"]]
    if len(names) < count:
        raise CheckpointError(
            f"{run_dir}: only {len(names)} {which} checkpoints are kept, {count} asked "
            f"(raise train.keep_{which})"
        )
    return [Path(run_dir) / "checkpoints" / n for n in names[:count]]


def average_checkpoints(paths: Sequence[Path], out: Path) -> dict[str, object]:
    """Average the weights of `paths` into `out`; returns a short summary."""
    if not paths:
        raise CheckpointError("nothing to average: give at least one checkpoint")
    first = load_checkpoint(paths[0])
    total = {k: v.double() for k, v in first["model"].items()}
    steps = [int(first["step"])]
    for path in paths[1:]:
        state = load_checkpoint(path)
        if state["config"]["model"] != first["config"]["model"] or state["vocab"] != first["vocab"]:
            raise CheckpointError(
                f"{path}: another model or vocabulary than {paths[0]}; cannot average"
            )
        for key, value in state["model"].items():
            total[key] += value.double()
        steps.append(int(state["step"]))
    model = {k: (v / len(paths)).to(first["model"][k].dtype) for k, v in total.items()}
    save_checkpoint(
        {
            "config": first["config"],
            "vocab": first["vocab"],
            "model": model,
            "step": max(steps),
            "averaged_from": [str(p) for p in paths],
        },
        Path(out),
    )
    return {"out": str(out), "inputs": len(paths), "steps": steps}
