"""`nmt plot` and `nmt plot-attention`: draw training curves and attention heatmaps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nmt_cli.app import app, user_errors


@app.command(
    name="plot-attention",
    epilog="Example: nmt translate runs/de-en --alignments align.jsonl < test.de > hyp.en; "
    "nmt plot-attention align.jsonl --out attention/ --lines 1-3",
)
def plot_attention(
    file: Annotated[
        Path, typer.Argument(help="From nmt translate --alignments (or --json --with-attention).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the PNGs (line-N.png).")],
    lines: Annotated[
        str | None, typer.Option(help="Only these input lines: 1,2,5-8 (default: all).")
    ] = None,
) -> None:
    """Draw attention heatmaps: one PNG per sentence, source pieces on x, target pieces on y."""
    with user_errors():
        from nmt_cli.alignments import parse_lines, read_alignments
        from nmt_cli.plotting import plot_alignments

        chosen = parse_lines(lines) if lines is not None else None
        written = plot_alignments(read_alignments(file), out, chosen, inputs=[file])
        print(f"wrote {len(written)} heatmap{'s' if len(written) != 1 else ''} to {out}")


@app.command(epilog="Example: nmt plot runs/de-en   (writes runs/de-en/plots/*.png)")
def plot(
    run: Annotated[Path, typer.Argument(help="Run folder (reads RUN/metrics.jsonl).")],
    out: Annotated[
        Path | None, typer.Option(help="Folder for the PNGs (default: RUN/plots).")
    ] = None,
    tensorboard: Annotated[
        bool,
        typer.Option("--tensorboard", help="Also write TensorBoard scalars to OUT/tensorboard."),
    ] = False,
) -> None:
    """Plot train loss, validation perplexity and validation BLEU over steps as PNGs."""
    with user_errors():
        from nmt_cli.plotting import plot_metrics, read_metrics, write_tensorboard

        metrics = run / "metrics.jsonl"
        rows = read_metrics(metrics)
        folder = out or run / "plots"
        for path in plot_metrics(rows, folder, run.resolve().name, inputs=[metrics]):
            print(path)
        if tensorboard:
            print(write_tensorboard(rows, folder / "tensorboard"))
