"""Words for people, shared by the tools' messages and the CLI's output."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 tag`, `2 tags`, `1 repository`, `0 repositories` (give irregular plurals)."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"


def human_size(size: int | None) -> str:
    """Bytes in SI units: `512 B`, `1.2 MB`; `-` when unknown."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
