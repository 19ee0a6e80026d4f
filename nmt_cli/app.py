"""The `nmt` Typer app, its global options, and the one place errors become exit codes.

Each command lives in nmt_cli/commands/ and registers itself on `app`; heavy imports (torch,
sentencepiece, sacrebleu) happen inside the commands, so `nmt --help` and start-up stay fast.

Every error is one plain line on stderr, `nmt: error: ...`: a user mistake found by a command
(`NmtError`, see `user_errors`) and a usage mistake found while parsing (an unknown option, a
missing or extra argument; see `run`) alike.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from nmt_cli import __version__
from nmt_cli.errors import NmtError, out_of_memory
from nmt_cli.helpscreen import MAX_WIDTH, PlainCommand, PlainGroup


class _App(typer.Typer):
    """A Typer app whose commands have plain help screens (nmt_cli.helpscreen)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        kwargs.setdefault("cls", PlainCommand)
        return super().command(*args, **kwargs)


app = _App(
    name="nmt",
    cls=PlainGroup,
    help="Neural machine translation with LSTM encoder-decoders and attention.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": MAX_WIDTH},
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


def run(args: Sequence[str] | None = None) -> None:
    """Run `nmt` with `args` (default: the command line) and exit with its status.

    Parsing errors, which Typer would draw as a boxed panel under the usage line, become one
    line like every other error, with a hint where a likely intent is known.
    """
    from nmt_cli.hints import usage_hint

    command = typer.main.get_command(app)
    try:
        status = command.main(args=args, prog_name="nmt", standalone_mode=False)
    except typer.TyperException as e:  # click's usage errors
        ctx = getattr(e, "ctx", None)
        if ctx is not None and not (args if args is not None else sys.argv[1:]):
            print(ctx.get_help(), file=sys.stderr)  # `nmt` alone: the help screen, as before
            sys.exit(2)
        message = " ".join(e.format_message().split())
        print(f"nmt: error: {message}{usage_hint(e, ctx)}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except typer.Abort:
        print("nmt: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)
