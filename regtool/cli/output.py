"""All terminal output: tables, JSON, sizes, times, warnings. Nothing else prints."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer

from regtool.cli.errors import EXIT_READER_GONE
from regtool.text import human_size, plural

__all__ = ["human_size", "plural"]  # the CLI's words come from here too


def iso_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def print_table(rows: list[list[Any]], headers: list[str]) -> None:
    # imported late: it costs every command ~20 ms; it ships no type hints
    from tabulate import tabulate  # type: ignore[import-untyped]

    typer.echo(tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True))


def print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2))


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def reader_gone() -> NoReturn:
    """Stop quietly, as Unix tools do when the reader of their output goes away
    (`regtool ls | head -1`): no message, exit status 141 (128 + SIGPIPE, what a shell
    shows for a tool SIGPIPE ended). stdout is pointed at /dev/null first, so that
    flushing what is left at exit cannot fail again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    raise typer.Exit(EXIT_READER_GONE)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
