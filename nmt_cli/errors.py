"""User-facing errors: each carries a one-line message the CLI prints without a traceback."""

from __future__ import annotations

import re


class NmtError(Exception):
    """A mistake in the user's input, config or files; the message says what and where."""

    exit_code = 1


class ConfigError(NmtError):
    """An invalid config key, value or combination."""


class DataError(NmtError):
    """Unreadable or malformed text or corpus files (the message names file and line)."""


class CheckpointError(NmtError):
    """A missing, corrupt or incompatible checkpoint."""


class TrainingInterrupted(NmtError):
    """SIGINT/SIGTERM: a checkpoint was written, the run can be resumed."""

    exit_code = 130


def out_of_memory(error: BaseException) -> str | None:
    """What torch's out-of-memory error asked for ("3.7 TB"), or None for any other error.

    torch raises these as RuntimeErrors (torch.OutOfMemoryError on CUDA, "can't allocate
    memory" on the CPU), not as MemoryError.
    """
    text = str(error)
    if type(error).__name__ != "OutOfMemoryError" and "can't allocate memory" not in text:
        return None
    match = re.search(r"tried to allocate (\d+) bytes", text, re.IGNORECASE)
    if match:
        return f"{int(match.group(1)) / 1e9:,.1f} GB"
    match = re.search(r"tried to allocate ([\d.]+ \w+)", text, re.IGNORECASE)
    return match.group(1) if match else "more than there is"
