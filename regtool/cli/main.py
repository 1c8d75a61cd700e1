"""The `regtool` command: one module per subcommand; errors become exit codes here."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from importlib.metadata import version as package_version
from typing import Annotated, ParamSpec, TypeVar

import typer

from regtool.cli import gc, htpasswd, ls, migrate, prune, rm, serve, ui, verify
from regtool.cli.errors import exit_code_for, message_for
from regtool.cli.output import error, reader_gone
from regtool.errors import RegtoolError

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


app = typer.Typer(
    name="regtool",
    help="List, verify, garbage-collect, migrate and serve a Docker/OCI registry stored in "
    "OpenStack Swift, over SFTP or in a local directory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold literal brackets: swift://container[/prefix]
)
app.command("ls")(reporting_errors(ls.ls))
app.command("verify")(reporting_errors(verify.verify))
app.command("gc")(reporting_errors(gc.gc))
app.command("rm")(reporting_errors(rm.rm))
app.command("prune")(reporting_errors(prune.prune))
app.command("serve")(reporting_errors(serve.serve))
app.command("migrate")(reporting_errors(migrate.migrate))
app.command("ui")(reporting_errors(ui.ui))
htpasswd.app.command("add")(reporting_errors(htpasswd.add))
htpasswd.app.command("rm")(reporting_errors(htpasswd.rm))
app.add_typer(htpasswd.app)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"regtool {package_version('regtool')}")
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
