"""The `nmt` Typer app, its global options, and the one place errors become exit codes.

Each command lives in nmt_cli/commands/ and registers itself on `app`; heavy imports (torch,
sentencepiece, sacrebleu) happen inside the commands, so `nmt --help` and start-up stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from nmt_cli import __version__
from nmt_cli.errors import NmtError, out_of_memory

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
    except RuntimeError as e:  # torch's out-of-memory errors are RuntimeErrors
        asked = out_of_memory(e)
        if asked is None:
            raise
        print(f"nmt: error: out of memory ({asked} asked for)", file=sys.stderr)
        raise typer.Exit(1) from None
