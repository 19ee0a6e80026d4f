"""User-facing errors: each carries a one-line message the CLI prints without a traceback."""


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
