"""How every ``remarket`` command reads on ``--help``: ``-h`` works as ``--help``, and options
show a plain metavar (``--port PORT``, as argparse does) or none for a flag, rather than the
``<str>``/``<bool>`` hints this Typer version prints in every row.

Typer has no setting for those hints, so the commands and groups built here swap their
parameters for subclasses that say less: parsing is untouched, only the help text changes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

HELP_OPTION_NAMES = ["-h", "--help"]


class _PlainOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        longest = max(self.opts, key=len, default=self.name or "value")
        return longest.lstrip("-").upper()


class _PlainArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        # The argument's own name (email, events_file) already says what to give.
        return None


def _plain(params: list[Any]) -> list[Any]:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _PlainOption
        elif type(param) is TyperArgument:
            param.__class__ = _PlainArgument
    return params


def _summary(help_text: str | None) -> str | None:
    """The first paragraph of a docstring on one line, for the list of commands: Typer's rich
    mode keeps the docstring's line breaks there, which wraps every entry mid-sentence."""
    if not help_text:
        return None
    first = inspect.cleandoc(help_text).split("\n\n", 1)[0]
    return " ".join(first.split())


class PlainCommand(TyperCommand):
    """A Typer command whose help shows plain metavars."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.short_help is None:
            self.short_help = _summary(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


class PlainGroup(TyperGroup):
    """A Typer group whose help shows plain metavars."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.short_help is None:
            self.short_help = _summary(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


class CommandGroup(typer.Typer):
    """``typer.Typer`` with ``-h`` and plain help for the group and each of its commands."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", PlainGroup)
        kwargs.setdefault("context_settings", {"help_option_names": HELP_OPTION_NAMES})
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(**kwargs)

    def command(
        self, name: str | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", PlainCommand)
        return super().command(name, **kwargs)
