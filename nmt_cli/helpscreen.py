"""Help screens: plain text, a name in capitals for each value, defaults never cut.

Typer's own screens label every value with its Python type (`<bool>`, `<list[str]>`,
`{model}`) and, in boxed panels, cut long defaults at the terminal's edge. These command
classes keep click's plain layout and write each option as a Unix tool does:
`-i, --input INPUT`, `--train PREFIX` (an option's `metavar`, else its name), a flag without
a value, and `[default: ...]` only where a default says something.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup

# Help text wraps at the terminal's width, up to this many columns.
MAX_WIDTH = 100


def _value_name(param: Any) -> str:
    return str(param.metavar or (param.name or "value").upper())


def _argument_usage(param: Any) -> str:
    """`MODEL`, `[HYPOTHESES]` or `INPUTS...`, as click writes arguments."""
    name = _value_name(param)
    if param.nargs != 1:
        name += "..."
    return name if param.required else f"[{name}]"


def _default(param: Any) -> str | None:
    """The `[default: ...]` text, or None where it would say nothing (a flag, no value)."""
    if param.show_default is False or getattr(param, "is_flag", False):
        return None
    if isinstance(param.show_default, str):
        return param.show_default
    value = param.default
    if value is None or value == [] or value == () or callable(value):
        return None
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _option_record(param: Any) -> tuple[str, str]:
    """(`-i, --input INPUT`, help and tags) for one option."""
    names = sorted(param.opts, key=lambda opt: opt.startswith("--"))  # -i before --input
    first = ", ".join(names)
    if not param.is_flag:
        first += f" {_value_name(param)}"
    if param.secondary_opts:
        first += " / " + ", ".join(param.secondary_opts)
    tags = []
    default = _default(param)
    if default is not None:
        tags.append(f"default: {default}")
    if param.required:
        tags.append("required")
    help_text = param.help or ""
    if tags:
        help_text += f"  [{'; '.join(tags)}]"
    return first, help_text.strip()


def _write_params(command: Any, ctx: Any, formatter: Any) -> None:
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    arguments = [
        (_argument_usage(p), getattr(p, "help", None) or "")
        for p in params
        if p.param_type_name == "argument"
    ]
    options = [_option_record(p) for p in params if p.param_type_name == "option"]
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    if options:
        with formatter.section("Options"):
            formatter.write_dl(options)


class PlainCommand(TyperCommand):
    """A command whose help reads like a Unix tool's (see the module docstring)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [
            _argument_usage(p)
            for p in self.get_params(ctx)
            if p.param_type_name == "argument" and not getattr(p, "hidden", False)
        ]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _write_params(self, ctx, formatter)


class PlainGroup(TyperGroup):
    """The `nmt` group: plain global options, then its commands."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _write_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Each command with its summary in full (wrapped, not cut with "...")."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
