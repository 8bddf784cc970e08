"""A click group whose heavy subcommands are imported only when they run.

`genesis --help` lists a lazy command from the one-line help given here, so listing
the commands imports none of them; running (or asking the help of) one imports its
module then. tests/test_cli_startup.py checks the given help against the command's own.
"""
from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A group with subcommands named by "module:attribute", imported on first use."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}

    def add_lazy_command(self, name: str, target: str, short_help: str) -> None:
        """Register NAME as the command at TARGET ("package.module:attribute"), listed with SHORT_HELP."""
        self.lazy[name] = (target, short_help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(load_command(self.lazy[cmd_name][0]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands section of the help, without importing the lazy commands not yet loaded."""
        listed = []
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                listed.append((name, self.lazy[name][1]))
                continue
            cmd = super().get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                listed.append((name, cmd))
        if not listed:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in listed)   # as click.Group does
        rows = [(name, what if isinstance(what, str) else what.get_short_help_str(limit)) for name, what in listed]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def load_command(target: str) -> click.Command:
    """The click command at TARGET ("package.module:attribute")."""
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command
