"""Translate a stream: raw input lines in, one output record per line out, as `nmt translate` does.

    from nmt_cli.stream import StreamOptions, translate_stream
    from nmt_cli.translate import Translator

    translator = Translator.load("runs/de-en")
    with open("test.de", "rb") as src, open("hyp.en", "w", encoding="utf-8") as hyp:
        stats = translate_stream(translator, src, hyp, StreamOptions(beam=5))

Lines are read ahead in pools of up to `POOL_BATCHES` batches (as many as are ready), each pool
is translated in length-sorted batches and written in input order, and the output is flushed
after every pool, so a pipe gets its answers as soon as they exist.

Output formats (one input line gives):
- text, n_best 1: the translation and a newline.
- text, n_best K > 1: K lines `LINE<TAB>SCORE<TAB>TEXT` (LINE 1-based, best first, SCORE the
  length-normalized log-probability to 4 decimals).
- json: one object {"line", "translation", "score", "pieces"}, plus "n_best" with K > 1 and the
  alignment keys with `with_attention` (see nmt_cli.alignments).
An `alignments` sink also gets one alignment record per line (JSON lines), from the best
hypothesis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal

from nmt_cli.alignments import alignment_record, json_record, to_json_line
from nmt_cli.copy_through import translate_protected
from nmt_cli.errors import ConfigError
from nmt_cli.glossary import Glossary, split_constraints
from nmt_cli.linereader import read_batches, read_prompted
from nmt_cli.protect import Protector
from nmt_cli.runtime import keep_freed_memory
from nmt_cli.sampling import Sampling
from nmt_cli.translate import POOL_BATCHES, Translation, Translator

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger(__name__)

OutputFormat = Literal["text", "json"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("text", "json")


@dataclass(frozen=True)
class StreamStats:
    """What a finished stream translated.

    Attributes:
        lines: input lines read (and output records written).
        pieces: target pieces of the best hypotheses, summed over the lines.
        seconds: wall-clock time from the first read to the last write.
    """

    lines: int
    pieces: int
    seconds: float


@dataclass(frozen=True)
class StreamOptions:
    """How `translate_stream` searches and what it writes; checked when made.

    Attributes:
        beam: beam size (None: the model's decode.beam); 1 = greedy.
        n_best: hypotheses per line (see the module docstring for the layouts).
        batch_size: sentences per search batch (None: the model's decode.batch_size).
        output_format: "text" or "json".
        with_attention: with json, add the best hypothesis' source, target and weights.
        constraints: each line is `SOURCE<TAB>PHRASE...`; the phrases must appear in its
            translation (see nmt_cli.glossary).
        glossary: the target terms of the source terms a line contains must appear in its
            translation.
        no_repeat_ngram: block repeated n-grams of this size (None: the model's decode config).
        coverage_penalty: GNMT coverage penalty beta (None: the model's decode config).
        sampling: draw n_best random translations per line instead of searching.
        protect: copy the spans it finds through translation (nmt_cli.copy_through).

    Raises:
        ConfigError: a size below 1, an unknown format, or attention outside JSON.
    """

    beam: int | None = None
    n_best: int = 1
    batch_size: int | None = None
    output_format: OutputFormat = "text"
    with_attention: bool = False
    constraints: bool = False
    glossary: Glossary | None = None
    no_repeat_ngram: int | None = None
    coverage_penalty: float | None = None
    sampling: Sampling | None = None
    protect: Protector | None = None

    def __post_init__(self) -> None:
        if (
            self.n_best < 1
            or (self.beam is not None and self.beam < 1)
            or (self.batch_size is not None and self.batch_size < 1)
        ):
            raise ConfigError("--beam, --batch-size and --n-best must be positive")
        if self.output_format not in OUTPUT_FORMATS:
            raise ConfigError(
                f"unknown output format {self.output_format!r}; valid: {', '.join(OUTPUT_FORMATS)}"
            )
        if self.with_attention and self.output_format != "json":
            raise ConfigError("--with-attention needs --json (or use --alignments FILE)")
        if (self.no_repeat_ngram or 0) < 0 or (self.coverage_penalty or 0) < 0:
            raise ConfigError("--no-repeat-ngram and --coverage-penalty must not be negative")

    def steering(self) -> dict[str, Any]:
        """The options for `Translator.translate_lines` beyond beam, n_best and batch size."""
        return {
            "no_repeat_ngram": self.no_repeat_ngram,
            "coverage_penalty": self.coverage_penalty,
            "sampling": self.sampling,
        }


def check_attention(translator: Translator, needed: bool) -> None:
    """Raise ConfigError if attention is `needed` but the translator's model has none."""
    if needed and translator.config.model.attention == "none":
        raise ConfigError(
            "--alignments/--with-attention: this model has no attention (model.attention: none)"
        )


def translate_stream(
    translator: Translator,
    reader: BinaryIO,
    writer: IO[str],
    options: StreamOptions | None = None,
    *,
    alignments: IO[str] | None = None,
    prompt: IO[str] | None = None,
    progress: tqdm | None = None,
) -> StreamStats:
    """Translate every line of `reader` to `writer`, one record per input line, in order.

    Args:
        translator: the loaded model.
        reader: raw input (UTF-8 lines; invalid bytes are replaced, with a warning). Read with
            `os.read` on its file descriptor unless `prompt` is given, so it needs a real one
            (a file or a pipe).
        writer: where the translations go, flushed after every pool of lines.
        options: search and output options (default: `StreamOptions()`).
        alignments: also write an alignment record per line here (JSON lines).
        prompt: interactive mode: write a `> ` prompt here before each line, read `reader`
            line by line and translate each line as soon as it is entered.
        progress: a bar to advance by the lines of each pool (nmt_cli.translate_progress).

    Returns:
        The lines and target pieces translated, and the time it took.

    Raises:
        ConfigError: attention is asked of a model without any.
    """
    opts = options or StreamOptions()
    check_attention(translator, alignments is not None or opts.with_attention)
    keep_freed_memory()
    note_capped(translator, opts)
    started = perf_counter()
    size = opts.batch_size or translator.decode.batch_size
    pools = (
        read_prompted(reader, prompt)
        if prompt is not None
        else read_batches(reader, size * POOL_BATCHES)
    )
    line_no, pieces = 1, 0
    for lines in pools:
        sources, phrases = split_constraints(lines, opts.constraints, opts.glossary)
        attention = alignments is not None or opts.with_attention
        results = _translate_pool(translator, sources, phrases, opts, line_no, size, attention)
        for offset, hyps in enumerate(results):
            pieces += len(hyps[0].pieces)
            if alignments is not None:
                alignments.write(to_json_line(alignment_record(line_no + offset, hyps[0])))
            writer.write(format_record(line_no + offset, hyps, opts))
        writer.flush()
        if alignments is not None:
            alignments.flush()
        line_no += len(lines)
        if progress is not None:
            progress.update(len(lines))
    return StreamStats(line_no - 1, pieces, perf_counter() - started)


def note_capped(translator: Translator, options: StreamOptions) -> None:
    """Say once when --beam or --n-best is wider than the target vocabulary (it is cut)."""
    for flag, width in (("--beam", options.beam), ("--n-best", options.n_best)):
        if width is not None and translator.capped(width) < width:
            log.warning(
                "%s %d is more than the %d target pieces; using %d",
                flag,
                width,
                translator.capped(width),
                translator.capped(width),
            )


def _translate_pool(
    translator: Translator,
    lines: Sequence[str],
    phrases: list[list[str]] | None,
    opts: StreamOptions,
    line_no: int,
    size: int,
    with_attention: bool,
) -> list[list[Translation]]:
    """One pool of lines through the translator (with copy-through when asked)."""
    search = {
        "beam": opts.beam, "n_best": opts.n_best, "batch_size": size, "constraints": phrases,
        **opts.steering(),
    }  # fmt: skip
    if opts.protect is not None:  # copy-through places spans by attention: it keeps it
        return translate_protected(translator, lines, opts.protect, line_no, **search)
    return translator.translate_lines(
        lines, first_line=line_no, with_attention=with_attention, **search
    )


def format_record(line: int, hypotheses: Sequence[Translation], options: StreamOptions) -> str:
    """The output for one input line, newline(s) included.

    Args:
        line: the 1-based input line number.
        hypotheses: the line's hypotheses, best first; with fewer than `options.n_best`, the
            last is repeated in the text layout.
        options: the format and n_best.
    """
    if options.output_format == "json":
        return to_json_line(
            json_record(line, hypotheses, options.n_best > 1, options.with_attention)
        )
    if options.n_best == 1:
        return hypotheses[0].text + "\n"
    return "".join(
        f"{line}\t{h.score:.4f}\t{h.text}\n"
        for h in (hypotheses[min(k, len(hypotheses) - 1)] for k in range(options.n_best))
    )


def log_speed(stats: StreamStats, loading_seconds: float, precision: str) -> None:
    """Log the closing line `nmt translate` prints (at INFO, as fairseq-generate prints one),
    with the precision the model ran at (`auto` chooses per machine)."""
    rates = ""
    if stats.lines and stats.seconds > 0:
        rates = (
            f": {stats.lines / stats.seconds:,.1f} lines/s, "
            f"{stats.pieces / stats.seconds:,.0f} pieces/s"
        )
    log.info(
        "translated %s line%s (%s target pieces) in %.2f s%s; the model loaded in %.2f s (%s)",
        f"{stats.lines:,}",
        "" if stats.lines == 1 else "s",
        f"{stats.pieces:,}",
        stats.seconds,
        rates,
        loading_seconds,
        precision,
    )
