"""`nmt score`: the log-probability a model gives to given translations, one line per pair."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Optional

import typer

from nmt_cli.app import app, user_errors

SCORE_HELP = """\
Score given translations: log p(target | source) under the model, one line per pair.

Pairs come from --src and --tgt (line-aligned files) or from stdin as SOURCE<TAB>TARGET lines.
Each pair gives `LOG_PROB<TAB>AVG_LOG_PROB<TAB>TOKENS`: the sum of the target's token
log-probabilities (eos included), that sum per token, and the token count. A pair whose
source is empty is not scored and gives `-<TAB>-<TAB>0`; an empty target scores eos alone.

--json prints one object per pair: {"line", "log_prob", "avg_log_prob", "tokens",
"token_log_probs", "pieces"} (pieces end with "</s>"; a pair not scored has nulls and
"skipped"). A closing line on stderr gives the corpus perplexity over all scored tokens.
"""
_Checkpoints = Annotated[
    list[str] | None,
    typer.Option(help="best, last, or a file in the run's checkpoints/; repeat it to ensemble."),
]
_Src = Annotated[Path | None, typer.Option(help="Source sentences, one per line.")]
_Tgt = Annotated[Path | None, typer.Option(help="Target sentences, line-aligned with --src.")]
_Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]
_Json = Annotated[
    bool, typer.Option("--json", help="One JSON object per pair, with per-token scores.")
]


@app.command(
    help=SCORE_HELP,
    epilog="Example: nmt score runs/de-en --src test.de --tgt hyp.en > scores.tsv",
)
def score(
    model: Annotated[Path, typer.Argument(help="Run folder or checkpoint .pt file.")],
    src: _Src = None,
    tgt: _Tgt = None,
    checkpoint: _Checkpoints = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Pairs per batch.")] = None,  # noqa: UP045
    output: _Output = None,
    device: Annotated[str, typer.Option(help="cpu, auto, cuda or cuda:N.")] = "cpu",
    json_: _Json = False,
    precision: Annotated[str, typer.Option(help="fp32, bf16 or int8 (as nmt translate).")] = "fp32",
) -> None:
    """See SCORE_HELP (`nmt score --help`)."""
    with user_errors():
        from nmt_cli.errors import ConfigError
        from nmt_cli.score_stream import log_summary, read_file_pairs, read_tab_pairs, score_stream
        from nmt_cli.scoring import Scorer
        from nmt_cli.textio import open_input, open_output
        from nmt_cli.translate import Translator

        if (src is None) != (tgt is None):
            raise ConfigError("--src and --tgt go together (or give SOURCE<TAB>TARGET on stdin)")
        if batch_size is not None and batch_size < 1:
            raise ConfigError("--batch-size must be positive")
        scorer = Scorer(Translator.load(model, checkpoint or ["best"], device, precision))
        with ExitStack() as files:
            if src is not None and tgt is not None:
                pairs = read_file_pairs(
                    files.enter_context(open_input(src)), files.enter_context(open_input(tgt))
                )
            else:
                pairs = read_tab_pairs(sys.stdin.buffer)
            inputs = [src, tgt, model if model.is_file() else None]
            sink = files.enter_context(open_output(output, inputs)) if output else sys.stdout
            stats = score_stream(scorer, pairs, sink, json_, batch_size)
        log_summary(stats)
