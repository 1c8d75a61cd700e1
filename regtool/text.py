"""Words for people, shared by the tools' messages and the CLI's output."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 tag`, `2 tags`, `1 repository`, `0 repositories` (give irregular plurals)."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"
