"""Values of a configuration document, read the way distribution's YAML library
(gopkg.in/yaml.v2) reads them into Go fields: a string field takes any plain value
(`5000` is `"5000"`), a bool field only a YAML boolean, an int field only a whole
number, and a `time.Duration` Go's duration text (`300ms`, `1h30m`) or a whole number
of nanoseconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from regtool.config.schema import ScalarKind

# Go's time.ParseDuration: a sequence of decimal numbers, each with a unit.
_GO_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)", re.ASCII)
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_GO_WHOLE = re.compile(r"[+-]?(?:(?:[0-9]*(?:\.[0-9]*)?)(?:ns|us|µs|μs|ms|s|m|h))+")
LOG_LEVELS = ("error", "warn", "info", "debug")
_PARSE_BOOL = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


class BadValue(ValueError):
    """A value of the wrong kind: the message says what was expected."""


def go_duration(value: Any) -> timedelta:
    """A Go `time.Duration` as yaml.v2 reads one: `"90s"`, `"1h30m"`, `"1.5s"`, `"0"`,
    or an integer of nanoseconds (so a bare `60` is 60 ns, as in distribution)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(microseconds=value / 1000)
    if not isinstance(value, str) or not value:
        raise BadValue(f"{_shown(value)} is not a duration such as 30s, 5m or 1h")
    text = value.strip()
    if text in ("0", "+0", "-0"):
        return timedelta(0)
    if not _GO_WHOLE.fullmatch(text):
        raise BadValue(f"{_shown(value)} is not a duration such as 30s, 5m or 1h")
    sign = -1 if text.startswith("-") else 1
    seconds = 0.0
    for number, unit in _GO_PART.findall(text.lstrip("+-")):
        if number in ("", "."):
            raise BadValue(f"{_shown(value)} is not a duration such as 30s, 5m or 1h")
        seconds += float(number) * _GO_UNITS[unit]
    if seconds > 290 * 365 * 86400:  # past Go's int64 nanoseconds
        raise BadValue(f"{_shown(value)} is too long a duration")
    return timedelta(seconds=sign * seconds)


def coerce(kind: ScalarKind, value: Any) -> Any:
    """`value` as the field of `kind` holds it; `BadValue` saying what was expected."""
    if kind == "string":
        if isinstance(value, dict | list):
            raise BadValue(
                "must be a plain value, not a " + ("list" if isinstance(value, list) else "mapping")
            )
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)
    if kind == "bool":
        if value is None:
            return False
        if not isinstance(value, bool):
            raise BadValue(f"{_shown(value)} is not true or false")
        return value
    if kind == "int":
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValue(f"{_shown(value)} is not a whole number")
        return value
    if kind == "weakint":  # a driver parameter: mapstructure's weak typing takes "5000"
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value, re.ASCII):
            return int(value)
        return coerce("int", value)
    if kind == "weakbool":  # ... and Go's strconv.ParseBool words
        if isinstance(value, str) and value in _PARSE_BOOL:
            return _PARSE_BOOL[value]
        return coerce("bool", value)
    if kind == "duration":
        return timedelta(0) if value is None else go_duration(value)
    if kind == "loglevel":
        level = coerce("string", value).lower()
        if level not in LOG_LEVELS:
            raise BadValue(f"{_shown(value)} is not one of {', '.join(LOG_LEVELS)}")
        return level
    raise AssertionError(kind)


def _shown(value: Any) -> str:
    """A value quoted for an error line, cut short (a typo, not a dump of the file)."""
    return repr(value)[:40]
