"""The `nmt` entry point: the app with every command registered (see nmt_cli/commands/)."""

from __future__ import annotations

from importlib import import_module

from nmt_cli.app import app, run

# Each module registers its commands on `app`; this order is the order of `nmt --help`.
COMMAND_MODULES = [
    "preprocess", "train", "translate", "score", "serve", "evaluate", "models", "export", "plots",
]  # fmt: skip
for _name in COMMAND_MODULES:
    import_module(f"nmt_cli.commands.{_name}")

__all__ = ["app", "main"]


def main() -> None:
    """The `nmt` entry point (pyproject.toml's script, and `python -m nmt_cli`)."""
    run()
