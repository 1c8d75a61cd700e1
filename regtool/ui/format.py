"""How the UI's pages write sizes, times and digests (the Jinja2 filters)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from regtool.inspect.listing import TagInfo


def when(moment: datetime | None) -> str:
    """UTC to the minute: `2026-11-30 18:04`; `-` when unknown."""
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def short(reference: str | None) -> str:
    """A digest cut to 12 hex digits after its algorithm (a V1 id to 12)."""
    if not reference:
        return "-"
    alg, sep, rest = reference.partition(":")
    return f"{alg}:{rest[:12]}" if sep else reference[:12]


def json_text(value: Any) -> str:
    """A config value (a list, a mapping) as compact JSON text, for showing escaped."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def tag_sort_key(by: str) -> Callable[[TagInfo], Any]:
    """Sort key for a repository's tags: `name`, `pushed` or `size` (unknowns first)."""
    if by == "pushed":
        return lambda t: (t.pushed is not None, t.pushed or datetime.min.replace(tzinfo=UTC))
    if by == "size":
        return lambda t: (t.size is not None, t.size or 0, t.tag)
    return lambda t: t.tag
