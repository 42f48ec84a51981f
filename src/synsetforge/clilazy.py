"""Command groups whose sub-commands are imported only when they run.

`synsetforge --help` must answer in a fraction of a second, but each stage's commands import numpy,
SQLAlchemy, PIL, aiohttp or FastAPI. A :class:`LazyGroup` lists its lazy sub-commands from a static table
(name, ``"module:attribute"``, one-line help) and imports a module only when its command is resolved: to run
it, or to print that command's own ``--help``.

It also tidies how Typer's Rich help shows value types: no ``<bool>`` after a flag (a flag takes no value)
and ``<str>`` rather than ``<list[str]>`` for a repeatable option or a variadic argument (each occurrence
takes one value).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
import typer.main
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

_LIST_TYPE = re.compile(r"<list\[(.*)\]>")


@dataclass(frozen=True)
class Lazy:
    """Where a sub-command lives and what its parent's ``--help`` says about it without importing it.

    ``target`` is ``"package.module:attribute"``: a :class:`typer.Typer` (a command group) or a plain
    function (one command, registered as Typer would with ``app.command(name)(function)``).
    """

    target: str
    help: str


class _Unloaded(TyperCommand):
    """Stands in for a lazy command in help listings and did-you-mean suggestions until it is imported."""


class LazyGroup(TyperGroup):
    """A Typer group that adds the commands of :attr:`lazy` and imports each only when it is resolved."""

    lazy: ClassVar[Mapping[str, Lazy]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._listing = False
        for name, entry in self.lazy.items():
            self.commands.setdefault(name, _Unloaded(name, help=entry.help))
        tidy_help(self)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if isinstance(command, _Unloaded) and not self._listing:
            command = self.commands[cmd_name] = load(cmd_name, self.lazy[cmd_name])
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # Listing sub-commands needs only their names and short help: keep the stand-ins.
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def lazy_group(commands: Mapping[str, Lazy]) -> type[LazyGroup]:
    """A :class:`LazyGroup` class with these lazy commands, for ``typer_app(cls=lazy_group({...}))``."""
    return type("LazyGroup", (LazyGroup,), {"lazy": dict(commands)})


def load(name: str, entry: Lazy) -> Any:
    """Import ``entry.target`` and turn it into a click command named ``name`` (help types tidied)."""
    module_name, _, attribute = entry.target.partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        command: Any = typer.main.get_group(target)
    else:
        from synsetforge.cliopts import typer_app

        single = typer_app(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    tidy_help(command)
    return command


def loaded_commands(group: Any) -> dict[str, Any]:
    """Every sub-command of ``group``, importing lazy ones: for tests and tools that walk the whole tree."""
    return {name: group.get_command(None, name) for name in group.list_commands(None)}


class _TidyOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        shown = super().display_type_rich(ctx)
        return _LIST_TYPE.sub(r"<\1>", shown) if shown else shown


class _TidyArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        shown = super().display_type_rich(ctx)
        return _LIST_TYPE.sub(r"<\1>", shown) if shown else shown


def _tidy_param(param: Any) -> None:
    # Same fields, one overridden method: switching the class keeps every other behaviour of Typer's own.
    if type(param) is TyperOption:
        param.__class__ = _TidyOption
    elif type(param) is TyperArgument:
        param.__class__ = _TidyArgument


def tidy_help(command: Any) -> None:
    """Tidy the help types of ``command``'s parameters and, for a group, of its loaded sub-commands."""
    for param in getattr(command, "params", ()):
        _tidy_param(param)
    for sub in getattr(command, "commands", {}).values():
        if not isinstance(sub, _Unloaded):
            tidy_help(sub)
    _patch_help_option(command)


def _patch_help_option(command: Any) -> None:
    """Tidy ``command``'s ``--help`` option too, which Typer builds only when a help page is asked for."""
    if not isinstance(command, TyperCommand | TyperGroup) or getattr(command, "_sf_tidy", False):
        return
    original = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            _tidy_param(option)
        return option

    command.get_help_option = get_help_option  # type: ignore[method-assign]
    command._sf_tidy = True  # type: ignore[union-attr]
