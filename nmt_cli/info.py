"""`nmt info`: what a run folder or checkpoint holds, without building an optimizer.

The model is built under `skip_init` (its tensors allocated but never initialized, no weights
loaded) to count parameters per top-level module; its parameter names and shapes are checked
against the checkpoint's weights, so a mismatched file is reported rather than described
wrongly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from nmt_cli.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    metric_from_score,
    resolve_checkpoint,
)
from nmt_cli.checkpoint_manager import MANIFEST, read_manifest
from nmt_cli.errors import CheckpointError
from nmt_cli.loading import build_from_checkpoint

MODULES = ("encoder", "decoder", "bridge", "generator")


@dataclass
class CheckpointFile:
    """One step checkpoint listed in `checkpoints/manifest.json`."""

    file: str
    step: int | None
    bytes: int | None  # None: listed in the manifest but missing on disk
    score: float | None  # the validation score it was ranked by (higher is better)
    best_rank: int | None  # 1 = the best; None: kept only as one of the last
    last: bool  # among the most recent checkpoints kept


@dataclass
class RunInfo:
    checkpoint: str
    format_version: int
    step: int
    minutes: float | None
    stop_metric: str
    best_score: float | None  # in the metric's own units: BLEU, or perplexity (lower is better)
    src_lang: str | None
    tgt_lang: str | None
    src_vocab: int
    tgt_vocab: int
    joint_vocab: bool
    parameters: dict[str, int]  # per top-level module, then "total"; shared ones counted once
    shared: list[str]  # "generator.weight = decoder.embedding.weight"
    checkpoints: list[CheckpointFile] | None  # None when given a single file
    best_file: str | None  # which step file best.pt is
    last_file: str | None
    config: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def to_text(self) -> str:
        metric = "BLEU" if self.stop_metric == "bleu" else "ppl"
        best = "n/a" if self.best_score is None else f"{self.best_score:.2f}"
        trained = f"{self.step:,} steps"
        if self.minutes is not None:
            trained += f" in {self.minutes:.1f} min"
        if self.joint_vocab:
            vocab = f"joint, {self.src_vocab:,} pieces"
        else:
            vocab = f"separate, source {self.src_vocab:,} / target {self.tgt_vocab:,} pieces"
        lines = [
            f"checkpoint   {self.checkpoint}",
            f"trained      {trained}",
            f"best valid   {metric} {best}",
            f"vocabulary   {vocab}",
        ]
        if self.src_lang and self.tgt_lang:
            lines.append(f"languages    {self.src_lang} -> {self.tgt_lang}")
        lines += ["", "parameters"]
        width = max(len(name) for name in self.parameters)
        lines += [f"  {name:<{width}}  {n:>12,}" for name, n in self.parameters.items()]
        lines += [f"  shared (counted once): {s}" for s in self.shared]
        if self.checkpoints is not None:
            lines += ["", "checkpoints on disk"]
            for c in self.checkpoints:
                size = "missing" if c.bytes is None else f"{c.bytes / 2**20:,.1f} MiB"
                score = "" if c.score is None else f"{metric} {c.score:.2f}"
                links = (("best.pt", self.best_file), ("last.pt", self.last_file))
                tags = [link for link, file in links if file == c.file]
                if c.best_rank is not None:
                    tags.append(f"best #{c.best_rank}")
                if c.last:
                    tags.append("recent")
                lines.append(f"  {c.file:<16} {size:>12}  {score:<13} {' '.join(tags)}".rstrip())
        lines += ["", "config", yaml.safe_dump(self.config, sort_keys=False).rstrip()]
        return "\n".join(lines)


def run_info(path: Path, checkpoint: str = "last") -> RunInfo:
    """Describe a run folder (its `checkpoint`: best|last|step-N.pt) or a checkpoint file."""
    file = resolve_checkpoint(Path(path), checkpoint)
    ckpt = load_checkpoint(file)
    config, src_tok, tgt_tok, model = build_from_checkpoint(ckpt)  # shapes only
    shapes = {name: tuple(t.shape) for name, t in ckpt.model.items()}
    if {name: tuple(t.shape) for name, t in model.state_dict().items()} != shapes:
        raise CheckpointError(
            f"{file}: its weights do not match its config's model (from another nmt version?)"
        )
    parameters, shared = count_parameters(model)
    metric = config.train.stop_metric
    training = ckpt.training
    best_score = None if training is None else training.best_score
    folder = file.parent if Path(path).is_dir() else None  # RUN/checkpoints
    listed = None if folder is None else list_checkpoints(folder, metric)
    return RunInfo(
        checkpoint=str(file),
        format_version=FORMAT_VERSION,
        step=ckpt.step,
        minutes=None if training is None else round(training.elapsed / 60, 2),
        stop_metric=metric,
        best_score=None if best_score is None else metric_from_score(best_score, metric),
        src_lang=ckpt.vocab.get("src_lang"),
        tgt_lang=ckpt.vocab.get("tgt_lang"),
        src_vocab=src_tok.vocab_size,
        tgt_vocab=tgt_tok.vocab_size,
        joint_vocab=ckpt.vocab["joint"],
        parameters=parameters,
        shared=shared,
        checkpoints=listed,
        best_file=_same_file(folder, "best.pt", listed),
        last_file=_same_file(folder, "last.pt", listed),
        config=ckpt.config,
    )


def count_parameters(model: torch.nn.Module) -> tuple[dict[str, int], list[str]]:
    """Parameters per top-level module and in total, each tensor counted once.

    A tied tensor (shared embeddings, output layer tied to the target embeddings) counts for
    the first module that holds it, in MODULES order; the others are listed as shared.

    Returns:
        {module: count, ..., "total": count} and ["generator.weight = decoder.embedding.weight"].
    """
    first_name: dict[int, str] = {}
    counts = {name: 0 for name in MODULES}
    shared = []
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first_name:
            shared.append(f"{name} = {first_name[id(p)]}")
            continue
        first_name[id(p)] = name
        module = name.split(".", 1)[0]
        counts[module] = counts.get(module, 0) + p.numel()
    return {**counts, "total": sum(counts.values())}, shared


def list_checkpoints(folder: Path, stop_metric: str = "bleu") -> list[CheckpointFile]:
    """The step checkpoints that RUN/checkpoints/manifest.json keeps, oldest first.

    Scores are given in the metric's units (the manifest ranks perplexity as -ppl).
    """
    manifest = read_manifest(folder / MANIFEST)
    if manifest is None:
        return []
    ranks = {b.file: (rank, b) for rank, b in enumerate(manifest.best, start=1)}
    files = []
    for name in sorted(manifest.kept(), key=lambda n: _step_of(n) or -1):
        rank, entry = ranks.get(name, (None, None))
        path = folder / name
        files.append(
            CheckpointFile(
                file=name,
                step=_step_of(name),
                bytes=path.stat().st_size if path.is_file() else None,
                score=None if entry is None else metric_from_score(entry.score, stop_metric),
                best_rank=rank,
                last=name in manifest.last,
            )
        )
    return files


def _step_of(name: str) -> int | None:
    stem = name.removesuffix(".pt").removeprefix("step-")
    return int(stem) if stem.isdigit() else None


def _same_file(folder: Path | None, link: str, listed: list[CheckpointFile] | None) -> str | None:
    """Which listed step file `best.pt` / `last.pt` is a hard link to (None if a copy)."""
    if folder is None or not listed or not (folder / link).is_file():
        return None
    for c in listed:
        path = folder / c.file
        if path.is_file() and os.path.samefile(path, folder / link):
            return c.file
    return None
