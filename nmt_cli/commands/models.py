"""`nmt average` and `nmt info`: work with checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nmt_cli.app import app, user_errors
from nmt_cli.errors import NmtError


@app.command(epilog="Example: nmt average runs/de-en --last 5 --out runs/de-en/avg.pt")
def average(
    inputs: Annotated[
        list[Path], typer.Argument(help="Checkpoint files, or one run folder with --last/--best.")
    ],
    out: Annotated[Path, typer.Option(help="The averaged checkpoint to write.")],
    last: Annotated[
        int, typer.Option(help="Average a run folder's N most recent checkpoints.")
    ] = 0,
    best: Annotated[int, typer.Option(help="Average a run folder's N best checkpoints.")] = 0,
) -> None:
    """Average the weights of several checkpoints into one (usually a little better than each)."""
    with user_errors():
        from nmt_cli.average import average_checkpoints, run_checkpoints

        paths = list(inputs)
        if last or best:
            if len(inputs) != 1 or not inputs[0].is_dir() or (last and best):
                raise NmtError("--last/--best take exactly one run folder (and only one of them)")
            paths = run_checkpoints(inputs[0], "last" if last else "best", last or best)
        summary = average_checkpoints(paths, out)
        print(f"averaged {summary['inputs']} checkpoints (steps {summary['steps']}) into {out}")


@app.command(epilog="Example: nmt info runs/de-en   (or: nmt info model.pt --json)")
def info(
    model: Annotated[Path, typer.Argument(help="Run folder or checkpoint .pt file.")],
    checkpoint: Annotated[
        str, typer.Option(help="With a run folder: last, best, or a file in checkpoints/.")
    ] = "last",
    json: Annotated[bool, typer.Option("--json", help="One JSON object for scripts.")] = False,
) -> None:
    """Describe a model: steps, best score, vocabularies, parameters, checkpoints, config."""
    with user_errors():
        from nmt_cli.info import run_info

        described = run_info(model, checkpoint)
        print(described.to_json() if json else described.to_text())
