"""`regtool htpasswd add USER` / `rm USER`: the bcrypt entries `regtool serve --htpasswd`
and distribution's `auth.htpasswd` read."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from regtool.errors import UsageError

app = typer.Typer(
    name="htpasswd",
    help="Add or remove users of an htpasswd file (bcrypt, as distribution reads it).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

#: A user name the file format and a Basic login can carry: no `:`, no space or control.
_USER_RE = re.compile(r"[^\s:#\x00-\x1f\x7f][^\s:\x00-\x1f\x7f]{0,254}")


def default_file() -> Path:
    """`$XDG_CONFIG_HOME/regtool/htpasswd` (or `~/.config/...`)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "regtool" / "htpasswd"


FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        metavar="FILE",
        envvar="REGTOOL_HTPASSWD",
        show_envvar=True,
        help="The htpasswd file. Default: $XDG_CONFIG_HOME/regtool/htpasswd.",
    ),
]
UserArgument = Annotated[str, typer.Argument(metavar="USER", help="The user name.")]


def _user(name: str) -> str:
    if not _USER_RE.fullmatch(name):
        raise UsageError(
            f"user name {name[:80]!r} must be 1-255 characters without ':', spaces or "
            "control characters, and not start with '#'"
        )
    return name


def add(
    user: UserArgument,
    file: FileOption = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
    ] = False,
) -> None:
    """Add USER, or set a new password for USER; the password is prompted for twice."""
    from regtool.server.auth.htpasswd import hash_password, write_entry

    path = file or default_file()
    _user(user)
    try:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    except UnicodeDecodeError:
        raise UsageError("the password is not UTF-8 text") from None
    if not password:
        raise UsageError("the password must not be empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        existed = write_entry(path, user, hash_password(password))
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    typer.echo(f"{'updated' if existed else 'added'} {user} in {path}", err=True)


def rm(user: UserArgument, file: FileOption = None) -> None:
    """Remove USER."""
    from regtool.server.auth.htpasswd import write_entry

    path = file or default_file()
    _user(user)
    if not path.exists():
        raise UsageError(f"no htpasswd file at {path}")
    try:
        existed = write_entry(path, user, None)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    if not existed:
        raise UsageError(f"{user} is not in {path}")
    typer.echo(f"removed {user} from {path}", err=True)
