"""`nmt eval`: score hypotheses against references with sacrebleu."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nmt_cli.app import app, user_errors


@app.command(name="eval", epilog="Example: nmt eval --ref test.en hyp.en --metrics bleu,chrf,ter")
def evaluate(
    hypotheses: Annotated[
        Path | None, typer.Argument(help="Hypotheses file (default: stdin).")
    ] = None,
    ref: Annotated[Path, typer.Option(help="Reference translations, one per line.")] = Path("-"),
    metrics: Annotated[str, typer.Option(help="Comma-separated: bleu, chrf, ter.")] = "bleu",
    json: Annotated[bool, typer.Option("--json", help="One JSON object for scripts.")] = False,
) -> None:
    """Score detokenized hypotheses against references with sacrebleu (signatures included)."""
    with user_errors():
        from nmt_cli.errors import ConfigError
        from nmt_cli.evaluate import format_scores, score_files

        if str(ref) == "-":
            raise ConfigError("--ref is required: nmt eval --ref REF [HYP]")
        print(format_scores(score_files(hypotheses, ref, metrics), json=json))


app.command(name="evaluate", help="Same as `nmt eval`.")(evaluate)
