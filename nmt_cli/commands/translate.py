"""`nmt translate`: stdin (or a file) -> translations, one output line per input line."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Optional

import typer

from nmt_cli.app import app, user_errors

TRANSLATE_HELP = """\
Translate stdin (or --input) to stdout (or --output): one output line per input line.

When stdin is a terminal, a `> ` prompt (on stderr) asks for one line at a time and each
is translated as soon as it is entered; Ctrl-D ends the session.

With --n-best K, each input line gives K lines `LINE<TAB>SCORE<TAB>TEXT` (LINE is 1-based,
best first; SCORE is the length-normalized log-probability).

--json prints one object per input line: {"line", "translation", "score", "pieces"}, plus
"n_best" (a list of {"translation", "score", "pieces"}) with --n-best K, and with
--with-attention the alignment keys below.

--alignments FILE writes one object per input line: {"line", "source": source pieces,
"target": target pieces + "</s>", "weights": one row per target piece, one column per
source piece}, from the best hypothesis (empty lists for an empty line; a line translated
in parts gets a block-diagonal matrix). Draw them with `nmt plot-attention FILE`.
"""
_Checkpoints = Annotated[
    list[str] | None,
    typer.Option(
        help="best, last, or a file in the run's checkpoints/; repeat it to ensemble "
        "(probabilities averaged per step).",
    ),
]
_Beam = Annotated[
    int | None, typer.Option(help="Beam size (1 = greedy); default from the model's config.")
]
_NBest = Annotated[
    int, typer.Option(help="Hypotheses per input: prints LINE<TAB>SCORE<TAB>TEXT lines.")
]
_Input = Annotated[
    Path | None, typer.Option("--input", "-i", help="Read from this file instead of stdin.")
]
_Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]
_Alignments = Annotated[
    Path | None, typer.Option(help="Also write each line's attention to this file (JSON lines).")
]
_Json = Annotated[
    bool, typer.Option("--json", help="One JSON object per input line instead of text.")
]
_WithAttention = Annotated[
    bool,
    typer.Option(
        "--with-attention", help="With --json: add source, target and weights (the attention)."
    ),
]
_Precision = Annotated[
    str,
    typer.Option(
        help="fp32 (the model as trained), bf16 (CPU with native bf16, or CUDA) or int8 "
        "(dynamic quantization, CPU only): faster, BLEU within a few tenths."
    ),
]


@app.command(
    help=TRANSLATE_HELP, epilog="Example: nmt translate runs/de-en --beam 5 < test.de > hyp.en"
)
def translate(
    model: Annotated[Path, typer.Argument(help="Run folder or checkpoint .pt file.")],
    checkpoint: _Checkpoints = None,
    beam: _Beam = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sentences per batch.")] = None,  # noqa: UP045
    n_best: _NBest = 1,
    input: _Input = None,
    output: _Output = None,
    device: Annotated[str, typer.Option(help="cpu, auto, cuda or cuda:N.")] = "cpu",
    alignments: _Alignments = None,
    json_: _Json = False,
    with_attention: _WithAttention = False,
    precision: _Precision = "fp32",
) -> None:
    """See TRANSLATE_HELP (`nmt translate --help`)."""
    started = time.perf_counter()
    with user_errors():
        from nmt_cli.runtime import exit_now, long_lived

        with long_lived():  # the imports and the model live until exit
            from nmt_cli.pipewatch import stop_when_closed
            from nmt_cli.stream import StreamOptions, check_attention, log_speed, translate_stream
            from nmt_cli.textio import open_input, open_output
            from nmt_cli.translate import Translator

            options = StreamOptions(
                beam, n_best, batch_size, "json" if json_ else "text", with_attention
            )
            translator = Translator.load(model, checkpoint or ["best"], device, precision)
        loading = time.perf_counter() - started
        check_attention(translator, alignments is not None or with_attention)
        interactive = input is None and sys.stdin.isatty()
        with ExitStack() as files:
            inputs = [input, model if model.is_file() else None]
            align_sink = (
                files.enter_context(open_output(alignments, inputs)) if alignments else None
            )
            source = files.enter_context(open_input(input)) if input else sys.stdin.buffer
            sink = files.enter_context(open_output(output, inputs)) if output else sys.stdout
            prompt = sys.stderr if interactive else None
            try:
                with stop_when_closed(sink):  # `| head -2` stops the work, not just the writes
                    stats = translate_stream(
                        translator, source, sink, options, alignments=align_sink, prompt=prompt
                    )
            except KeyboardInterrupt:
                if not interactive:
                    raise
                print(file=sys.stderr)  # Ctrl-C ends a session quietly, off the prompt line
                raise typer.Exit(130) from None
            if not interactive:
                log_speed(stats, loading)
        exit_now()  # every output is written and closed: skip the interpreter's teardown
