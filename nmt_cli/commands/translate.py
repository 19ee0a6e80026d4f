"""`nmt translate`: stdin (or a file) -> translations, one output line per input line."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from nmt_cli.app import app, user_errors

if TYPE_CHECKING:  # imported inside the command: `nmt --help` stays fast
    from nmt_cli.stream import OutputFormat, StreamOptions
    from nmt_cli.translate import Translator

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

--constraints: each input line is SOURCE<TAB>PHRASE<TAB>PHRASE...; every
target phrase must appear in the translation (lexically constrained beam
search; a beam of 1 + the number of constraint pieces or more works best).
--glossary FILE.tsv holds lines SOURCE TERM<TAB>TARGET TERM: a line whose
source contains a term (whole words, case-sensitive) must get its target term.
A phrase that does not fit in the output length limit is reported on stderr,
and the line is translated without it. For example:

  printf 'Ein Hund rennt.\\tpuppy\\n' | nmt translate runs/de-en --constraints

  nmt translate runs/de-en --beam 5 --glossary terms.tsv < test.de > hyp.en

Repetition: --no-repeat-ngram 3 forbids any 3-gram twice in one output; --coverage-penalty
0.2 ranks finished hypotheses by GNMT's coverage penalty (favours outputs that attended to
the whole source). Both default to the model's decode config (decode.no_repeat_ngram,
decode.coverage_penalty).

Sampling: --sample draws random translations instead of searching, from the top-k tokens
(--top-k), the top-p probability mass (--top-p), with a --temperature; --n-best K draws K
per input; --seed makes it reproducible (same input, options, batch size and device).
  nmt translate runs/de-en --sample --top-p 0.9 --n-best 4 --seed 1 < mono.de

Copy-through: --protect keeps numbers, URLs, e-mail addresses and XML/HTML tags (and
whatever each --protect-regex matches) exactly as written: they travel as placeholders and
are put back where the model's attention places them; a span the model dropped is put back
after the word attending to it most, with a warning on stderr. Models learn to carry the
placeholders when trained on `nmt preprocess --protect` data.
  nmt translate runs/de-en --protect --protect-regex 'ID-[0-9]+' < mail.de

A file job (--input, or piped stdin while stderr is a terminal) shows a progress bar on
stderr with lines/s and an ETA; `nmt -q translate` hides it.
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
_Constraints = Annotated[
    bool,
    typer.Option(
        "--constraints",
        help="Input lines are SOURCE<TAB>PHRASE...: the target phrases must appear in the output.",
    ),
]
_Glossary = Annotated[
    Path | None,
    typer.Option(
        help="TSV of SOURCE TERM<TAB>TARGET TERM: a line with a source term must get its "
        "target term."
    ),
]
_NoRepeat = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(help="Forbid repeating any n-gram of pieces of this size (0 = off; e.g. 3)."),
]
_Coverage = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(help="GNMT coverage penalty beta (0 = off; e.g. 0.2); beam search."),
]
_Sample = Annotated[
    bool, typer.Option("--sample", help="Draw random translations instead of searching.")
]
_TopK = Annotated[int, typer.Option(help="--sample: draw among the k best tokens (0 = all).")]
_TopP = Annotated[float, typer.Option(help="--sample: draw among the top-p probability mass.")]
_Temperature = Annotated[float, typer.Option(help="--sample: < 1 sharper, > 1 flatter.")]
_Seed = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(help="--sample: seed for reproducible draws."),
]
_Protect = Annotated[
    bool, typer.Option("--protect", help="Copy numbers, URLs, e-mails and tags through.")
]
_ProtectRegex = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(help="Also copy through what this regex matches (repeatable)."),
]
_Precision = Annotated[
    str,
    typer.Option(
        help="auto (bf16 on a CPU with native bf16, AVX512-BF16 or AMX; fp32 otherwise), "
        "fp32 (the model as trained), bf16 (CPU with native bf16, or CUDA) or int8 "
        "(dynamic quantization, CPU only): bf16 and int8 are faster, BLEU within a few tenths."
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
    precision: _Precision = "auto",
    constraints: _Constraints = False,
    glossary: _Glossary = None,
    no_repeat_ngram: _NoRepeat = None,
    coverage_penalty: _Coverage = None,
    sample: _Sample = False,
    top_k: _TopK = 0,
    top_p: _TopP = 1.0,
    temperature: _Temperature = 1.0,
    seed: _Seed = None,
    protect: _Protect = False,
    protect_regex: _ProtectRegex = None,
) -> None:
    """See TRANSLATE_HELP (`nmt translate --help`)."""
    started = time.perf_counter()
    with user_errors():
        from nmt_cli.runtime import exit_now, long_lived

        with long_lived():  # the imports and the model live until exit
            from nmt_cli.glossary import Glossary
            from nmt_cli.protect import Protector
            from nmt_cli.sampling import Sampling
            from nmt_cli.stream import StreamOptions, check_attention
            from nmt_cli.translate import Translator

            fmt: OutputFormat = "json" if json_ else "text"
            options = StreamOptions(
                beam=beam, n_best=n_best, batch_size=batch_size, output_format=fmt,
                with_attention=with_attention, constraints=constraints,
                glossary=Glossary.load(glossary) if glossary else None,  # before the slow part
                no_repeat_ngram=no_repeat_ngram, coverage_penalty=coverage_penalty,
                sampling=Sampling(top_k, top_p, temperature, seed) if sample else None,
                protect=Protector(protect_regex or (), protect)
                if protect or protect_regex else None,
            )  # fmt: skip
            translator = Translator.load(model, checkpoint or ["best"], device, precision)
        loading = time.perf_counter() - started
        check_attention(translator, alignments is not None or with_attention)
        _run(translator, options, model, input, output, alignments, loading)
        exit_now()  # every output is written and closed: skip the interpreter's teardown


def _run(
    translator: Translator,
    options: StreamOptions,
    model: Path,
    input: Path | None,
    output: Path | None,
    alignments: Path | None,
    loading: float,
) -> None:
    """Open the files, translate, and report: the part of `translate` after loading."""
    from nmt_cli.pipewatch import stop_when_closed
    from nmt_cli.stream import log_speed, translate_stream
    from nmt_cli.textio import open_input, open_output, open_stdout
    from nmt_cli.translate_progress import count_lines, progress_bar, wants_progress

    interactive = input is None and sys.stdin.isatty()
    with ExitStack() as files:
        inputs = [input, model if model.is_file() else None]
        align_sink = files.enter_context(open_output(alignments, inputs)) if alignments else None
        source = files.enter_context(open_input(input)) if input else sys.stdin.buffer
        sink = files.enter_context(open_output(output, inputs) if output else open_stdout())
        prompt = sys.stderr if interactive else None
        bar = None
        if not interactive and wants_progress(input, sys.stdin, sys.stderr):
            bar = files.enter_context(progress_bar(count_lines(input) if input else None))
        try:
            with stop_when_closed(sink):  # `| head -2` stops the work, not just the writes
                stats = translate_stream(
                    translator, source, sink, options, alignments=align_sink, prompt=prompt,
                    progress=bar,
                )  # fmt: skip
        except KeyboardInterrupt:
            if not interactive:
                raise
            print(file=sys.stderr)  # Ctrl-C ends a session quietly, off the prompt line
            raise typer.Exit(130) from None
        if bar is not None:
            bar.close()  # before the closing line
        if not interactive:
            log_speed(stats, loading, translator.precision)
