"""`nmt export`: a checkpoint cut down to what translation needs, to ship or serve.

A training checkpoint carries the optimizer's moments and the data position besides the
weights, about 2.5 times the weights' size. The exported file keeps the weights, the resolved
config and the sentencepiece models (a translation-only `Checkpoint`, as `nmt average` writes),
so `nmt translate`, `nmt info` and anything built on `nmt_cli.loading` read it like any other
checkpoint; it cannot be resumed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from nmt_cli.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from nmt_cli.errors import CheckpointError
from nmt_cli.textio import same_file


@dataclass(frozen=True)
class ExportSummary:
    """What `export_model` wrote.

    Attributes:
        source: the checkpoint file it read.
        out: the file it wrote.
        step: the update count of the weights.
        source_bytes: the size of the source checkpoint.
        out_bytes: the size of the exported file.
    """

    source: Path
    out: Path
    step: int
    source_bytes: int
    out_bytes: int

    def to_text(self) -> str:
        mib = 2**20
        return (
            f"exported {self.source} (step {self.step:,}, {self.source_bytes / mib:,.1f} MiB) "
            f"to {self.out} ({self.out_bytes / mib:,.1f} MiB, translation only)"
        )


def export_model(path: Path, out: Path, checkpoint: str = "best") -> ExportSummary:
    """Write a translation-only copy of a checkpoint: weights, config, tokenizers.

    Args:
        path: a run folder or a checkpoint .pt file.
        out: the file to write (atomically: a kill leaves the old file or the new one).
        checkpoint: with a run folder, best, last or a file in its checkpoints/.

    Raises:
        CheckpointError: the checkpoint is missing or unusable, `out` is the checkpoint
            itself, or `out` cannot be written.
    """
    source = resolve_checkpoint(Path(path), checkpoint)
    out = Path(out)
    if same_file(out, source):
        raise CheckpointError(f"{out}: is the checkpoint being exported; write to another file")
    if out.is_dir():
        raise CheckpointError(f"{out}: is a folder; give the file to write, e.g. {out}/model.pt")
    ckpt = load_checkpoint(source)
    save_checkpoint(replace(ckpt, training=None), out)  # no optimizer, sampler, RNG states
    return ExportSummary(source, out, ckpt.step, source.stat().st_size, out.stat().st_size)
