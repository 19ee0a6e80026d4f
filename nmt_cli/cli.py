"""The `nmt` command: parse arguments, call the library, print results, map errors to exit codes.

Heavy imports (torch, sentencepiece, sacrebleu) happen inside the commands, so `nmt --help`
and start-up stay fast.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from nmt_cli import __version__
from nmt_cli.errors import NmtError

app = typer.Typer(
    name="nmt",
    help="Neural machine translation with LSTM encoder-decoders and attention.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"nmt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")
    ] = False,
) -> None:
    from nmt_cli.runtime import log_to_console

    log_to_console(quiet)


@contextmanager
def user_errors() -> Iterator[None]:
    """Known mistakes -> `error: message` on stderr and a non-zero exit, never a traceback."""
    try:
        yield
    except NmtError as e:
        print(f"nmt: error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        print("nmt: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except BrokenPipeError:  # the reader went away (`nmt translate ... | head -1`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None  # stop quietly, as Unix tools do
    except MemoryError:
        print("nmt: error: out of memory", file=sys.stderr)
        raise typer.Exit(1) from None


@app.command(
    epilog="Example: nmt preprocess --src de --tgt en --train D/train --valid D/val --out data/"
)
def preprocess(
    src: Annotated[str, typer.Option(help="Source language suffix: reads PREFIX.SRC.")],
    tgt: Annotated[str, typer.Option(help="Target language suffix: reads PREFIX.TGT.")],
    train: Annotated[
        Path, typer.Option(help="Training files prefix (D/train -> D/train.SRC, D/train.TGT).")
    ],
    valid: Annotated[Path, typer.Option(help="Validation files prefix.")],
    out: Annotated[Path, typer.Option(help="Output folder for tokenizer(s) and encoded corpus.")],
    test: Annotated[list[Path] | None, typer.Option(help="Test files prefix (repeatable).")] = None,
    vocab_size: Annotated[int, typer.Option(help="Sentencepiece vocabulary size.")] = 8000,
    separate_vocab: Annotated[
        bool, typer.Option(help="One vocabulary per language instead of a joint one.")
    ] = False,
    model_type: Annotated[
        str, typer.Option(help="Sentencepiece model: unigram or bpe.")
    ] = "unigram",
    max_len: Annotated[
        int, typer.Option(help="Drop training pairs longer than this (in pieces).")
    ] = 100,
) -> None:
    """Train sentencepiece on the training split and encode every split into OUT."""
    with user_errors():
        from nmt_cli.preprocess import preprocess as run

        summary = run(
            src_lang=src,
            tgt_lang=tgt,
            train_prefix=train,
            valid_prefix=valid,
            out_dir=out,
            vocab_size=vocab_size,
            separate_vocab=separate_vocab,
            model_type=model_type,
            max_len=max_len,
            test_prefixes=test or [],
        )
        print(summary.to_text())


@app.command(
    epilog="Example: nmt train data/ --out runs/de-en --config examples/multi30k-de-en.yaml "
    "--set train.max_steps=500"
)
def train(
    data: Annotated[Path, typer.Argument(help="Folder written by `nmt preprocess`.")],
    out: Annotated[Path, typer.Option(help="Run folder (checkpoints, logs, metrics).")],
    config: Annotated[
        Path | None, typer.Option(help="YAML config (data/model/train/decode).")
    ] = None,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--set", help="Override a config key: --set train.max_steps=500 (repeatable)."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")
    ] = "auto",
    resume: Annotated[
        bool, typer.Option(help="Continue the run in OUT from its last checkpoint.")
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (same as --set train.seed=N).")
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            help="Data-parallel ranks on this machine (one per GPU), started as torchrun does."
        ),
    ] = 1,
) -> None:
    """Train an encoder-decoder with attention on a preprocessed corpus.

    Also runs as one rank of a torchrun job: torchrun --nproc-per-node N -m nmt_cli train ...
    """
    from nmt_cli.runtime import cap_kernel_caches

    cap_kernel_caches()  # before torch builds its first kernel
    with user_errors():
        from nmt_cli.config import load_config
        from nmt_cli.rundir import saved_config
        from nmt_cli.train import train as run

        overrides = list(set_ or []) + ([f"train.seed={seed}"] if seed is not None else [])
        base = saved_config(out) if resume else None
        cfg = load_config(config, overrides, base=base)
        if nproc != 1:
            from nmt_cli.distributed import launch

            launch(nproc, sys.argv[1:], out)
            return
        result = run(cfg, data, out, device=device, resume=resume)
        if result.rank != 0:  # rank 0 reports for the job
            return
        print(result.summary(cfg.train.stop_metric))


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
        written = plot_alignments(read_alignments(file), out, chosen)
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

        rows = read_metrics(run / "metrics.jsonl")
        folder = out or run / "plots"
        for path in plot_metrics(rows, folder, run.resolve().name):
            print(path)
        if tensorboard:
            print(write_tensorboard(rows, folder / "tensorboard"))


def main() -> None:
    """The `nmt` entry point (pyproject.toml's script, and `python -m nmt_cli`)."""
    app()
