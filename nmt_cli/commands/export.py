"""`nmt export`: a translation-only model file (weights, config, tokenizers; no optimizer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nmt_cli.app import app, user_errors


@app.command(epilog="Example: nmt export runs/de-en --out de-en.pt; nmt translate de-en.pt")
def export(
    model: Annotated[Path, typer.Argument(help="Run folder or checkpoint .pt file.")],
    out: Annotated[Path, typer.Option(help="The model file to write.")],
    checkpoint: Annotated[
        str, typer.Option(help="With a run folder: best, last, or a file in checkpoints/.")
    ] = "best",
) -> None:
    """Write a translation-only model file: weights, config and tokenizers, no optimizer."""
    with user_errors():
        from nmt_cli.export import export_model

        print(export_model(model, out, checkpoint).to_text())
