"""Durations on the command line (`--min-age 30d`, `--older-than 12h`): parsed by
`regtool.durations`, a bad one an error naming its option (exit 2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from regtool import durations


def parse_duration(text: str) -> timedelta:
    """`0`, `90s`, `30m`, `1h30m`, `2d`, `1w`, up to `durations.MAX_DURATION`;
    `BadParameter` (exit 2, naming the option) otherwise."""
    try:
        return durations.parse_duration(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


#: The keywords of a `typer.Option` typed as a duration.
DURATION: dict[str, Any] = {"parser": parse_duration, "metavar": "DURATION"}
