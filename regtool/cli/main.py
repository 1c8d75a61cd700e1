"""The `regtool` command: one module per subcommand; errors become exit codes here."""

from __future__ import annotations

import logging
from typing import Any

import click
import typer
from typer.core import TyperGroup

from regtool.cli import gc, ls, serve, verify
from regtool.cli.errors import exit_code_for
from regtool.cli.output import error
from regtool.errors import RegtoolError


class RegtoolGroup(TyperGroup):
    """Turns every expected failure into one line on stderr and its exit code, for the
    installed command and for tests driving `app` alike: never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RegtoolError as e:
            error(str(e))
            raise typer.Exit(exit_code_for(e)) from None


app = typer.Typer(
    name="regtool",
    cls=RegtoolGroup,
    help="List, verify, garbage-collect and serve a Docker/OCI registry stored in "
    "OpenStack Swift, over SFTP or in a local directory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold literal brackets: swift://container[/prefix]
)
app.command("ls")(ls.ls)
app.command("verify")(verify.verify)
app.command("gc")(gc.gc)
app.command("serve")(serve.serve)


@app.callback()
def regtool() -> None:
    """List, verify, garbage-collect and serve a Docker/OCI registry stored in OpenStack
    Swift, over SFTP or in a local directory."""


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()
