"""The `regtool` command: one module per subcommand; errors become exit codes here.

A subcommand's module is imported only when that command runs (or help lists it): each
pulls in its tool, and the tools' dependencies (the server's, gc's, retention's) cost a
short command such as `regtool ls` more start-up time than its work on a warm cache.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from typer.core import TyperGroup

from regtool.cli.errors import exit_code_for, message_for
from regtool.cli.output import error, reader_gone
from regtool.errors import RegtoolError

if TYPE_CHECKING:  # the click that Typer carries (0.29 vendors its own)
    from typer._click import Command, Context

P = ParamSpec("P")
R = TypeVar("R")


def reporting_errors(command: Callable[P, R]) -> Callable[P, R]:
    """The command, with every expected failure turned into one line on stderr and its
    exit code: never a traceback, for the installed command and for tests driving `app`
    alike. (Typer reads the parameters through `functools.wraps`.)"""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:  # not a storage fault: drivers raise StorageError
            reader_gone()
        except (RegtoolError, OSError) as e:
            error(message_for(e))
            raise typer.Exit(exit_code_for(e)) from None

    return run


#: Subcommand -> the module below `regtool.cli` defining it: a function of the command's
#: name, or (a group of commands) a Typer `app`. In the order help lists them.
COMMANDS = {
    "ls": "ls",
    "verify": "verify",
    "gc": "gc",
    "rm": "rm",
    "prune": "prune",
    "serve": "serve",
    "migrate": "migrate",
    "ui": "ui",
    "htpasswd": "htpasswd",
}


def _subcommand(name: str) -> Command:
    """The click command `name`, from its module (imported now) through Typer."""
    module = importlib.import_module(f"regtool.cli.{COMMANDS[name]}")
    group: typer.Typer | None = getattr(module, "app", None)
    if group is not None:
        if not group.registered_commands:  # once a process: the module keeps its app
            for verb in ("add", "rm"):
                group.command(verb)(reporting_errors(getattr(module, verb)))
        return typer.main.get_group(group)
    single = typer.Typer(
        add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None
    )
    single.command(name)(reporting_errors(getattr(module, name)))
    command = typer.main.get_command(single)
    command.name = name
    return command


class LazyCommands(TyperGroup):
    """regtool's subcommands, each built the first time it is asked for."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.commands[cmd_name] = _subcommand(cmd_name)
        return self.commands[cmd_name]


app = typer.Typer(
    name="regtool",
    cls=LazyCommands,
    help="List, verify, garbage-collect, migrate and serve a Docker/OCI registry stored in "
    "OpenStack Swift, over SFTP or in a local directory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold literal brackets: swift://container[/prefix]
)


def _print_version(wanted: bool) -> None:
    if wanted:
        # imported here: importlib.metadata costs every other command 40 ms of CPU
        from importlib.metadata import version

        typer.echo(f"regtool {version('regtool')}")
        raise typer.Exit()


@app.callback()
def regtool(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version."
        ),
    ] = False,
) -> None:
    """List, verify, garbage-collect and serve a Docker/OCI registry stored in OpenStack
    Swift, over SFTP or in a local directory."""


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()
