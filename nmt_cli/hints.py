"""Hints for the usual mistakes: what the user most likely meant, said in the error line.

Free of torch, so the command line's parsing errors stay fast.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmt_cli.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import typer

# Written by `nmt preprocess` into every data folder (nmt_cli.corpus.META_FILE).
DATA_FOLDER_MARK = "meta.json"


def usage_hint(error: typer.TyperException, ctx: Any) -> str:
    """The text to append to a parsing error: a likely intent, else where the help is.

    Args:
        error: click's usage error (its message is already in the line).
        ctx: the click context of the command being parsed, or None.
    """
    if ctx is None:
        return ""
    command = ctx.command.name
    message = error.format_message()
    if command == "translate" and "unexpected extra argument" in message:
        extra = re.search(r"\(([^()]*)\)$", message.strip())  # "... argument(s) (file.de)"
        file = extra.group(1).split()[0] if extra else "FILE"
        return f"; nmt translate reads stdin or the file given with -i: -i {file}"
    return f" (see '{ctx.command_path} -h')"


def check_prefix(flag: str, prefix: Path, langs: Sequence[str]) -> None:
    """Refuse a files prefix given as one of its files (`--train D/train.de`).

    Args:
        flag: the option's name without dashes, e.g. "train".
        prefix: what it was given.
        langs: the source and target language codes.

    Raises:
        ConfigError: `prefix` ends in `.LANG` and `prefix.LANG` does not exist.
    """
    first = prefix.with_name(f"{prefix.name}.{langs[0]}")
    if prefix.suffix.lstrip(".") in langs and not first.exists():
        stem = prefix.with_suffix("")
        raise ConfigError(
            f"--{flag} {prefix}: the flag takes a prefix, without the language: "
            f"--{flag} {stem} reads {stem}.{langs[0]} and {stem}.{langs[1]}"
        )


def missing_run_folder(path: Path, which: str) -> CheckpointError:
    """The error for a folder without `checkpoints/WHICH.pt`, saying what the folder is."""
    if (path / DATA_FOLDER_MARK).is_file():
        return CheckpointError(
            f"{path}: is a data folder (written by nmt preprocess), not a run folder; "
            f"train on it with: nmt train {path} --out RUN, then give RUN"
        )
    return CheckpointError(f"{path}: no {which}.pt in {path / 'checkpoints'} (is it a run folder?)")


def unknown_checkpoint(run: Path, which: str) -> CheckpointError:
    """The error for `--checkpoint WHICH` naming nothing in the run, with the closest name."""
    folder = run / "checkpoints"
    names = ["best", "last"]
    if folder.is_dir():
        names += sorted(p.name for p in folder.glob("*.pt") if p.name not in ("best.pt", "last.pt"))
    close = difflib.get_close_matches(which, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(names[:6])}"
    return CheckpointError(f"{run}: no checkpoint {which!r} in {folder}; {hint}")
