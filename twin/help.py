"""Help screens that teach: a flag shows no value type.

typer 0.29 prints a type for every option, `<bool>` on plain flags (`--json <bool>`), which
reads as if the flag took a value. `PlainFlagsGroup` gives every flag of the command tree an
empty metavar before help is drawn, so only options that take a value show their type.
(typer vendors its own click, so parameters are recognised by what they have, not their class.)
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

__all__ = ["PlainFlagsGroup"]


def _plain(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", "") is None:
            param.metavar = ""
    return params


def _plain_tree(command: Any, ctx: Any) -> None:
    _plain(command.params)
    help_option = command.get_help_option(ctx)  # made once, then cached by the command
    if help_option is not None:
        _plain([help_option])
    for sub in getattr(command, "commands", {}).values():
        _plain_tree(sub, ctx)


class PlainFlagsGroup(TyperGroup):
    """The root group of `twin`: plain flags throughout its tree (see the module docstring)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_tree(command, ctx)
        return command
