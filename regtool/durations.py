"""Durations as people type them: `0`, `90s`, `30m`, `1h30m`, `2d`, `1w`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# ASCII digits, matched whole (Python's `\d` takes any Unicode digit).
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])", re.ASCII | re.IGNORECASE)
_WHOLE = re.compile(rf"0|(?:{_PART.pattern})+", re.ASCII | re.IGNORECASE)


#: The longest duration taken (100 years): a longer one is a typo, and one past
#: `timedelta`'s range, or reaching back before year 1, cannot be computed with.
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """The duration `text` names, up to `MAX_DURATION`; `ValueError` (saying what is
    expected) for anything else."""
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not a duration such as 0, 30m, 1h or 2d")
    seconds = sum(float(n) * _UNITS[u.lower()] for n, u in _PART.findall(text))  # may be inf
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text[:40]!r} is longer than {MAX_DURATION.days}d")
    return timedelta(seconds=seconds)


def format_duration(span: timedelta) -> str:
    """`30d`, `12h`, `90m`, `45s`: the largest unit that divides `span` whole."""
    seconds = int(span.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
