"""Segment sets of distribution's Swift large objects (DLOs), beside `files/`:

    <segments dir>/<3 hex>/<rest, hex>/<%016d>            one segment of a large object
    <segments dir>/<3 hex>/<rest, hex>/<%016d>.<8 hex>    one appended by regtool: its
                                                          offset and its writer's token

A segment set (`<segments dir>/<3>/<rest>`) belongs to whichever object's
`X-Object-Manifest` names it. The name has a random part (distribution: the hex of the
path, random bytes and a SHA-1; regtool: a SHA-1 of the path and random bytes), so nothing
in a listing ties a set to its object: only a HEAD of the object tells.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from regtool.storage.base import Entry

_TAIL = re.compile(  # matched whole: fullmatch
    r"[0-9a-f]{3}/[0-9a-f]+/[0-9]{16}(?:\.[0-9a-f]{8})?", re.ASCII
)


@dataclass
class SegmentSet:
    """The segments of one large object, as a listing shows them."""

    path: str  # driver path of the set: `<segments dir>/<3>/<rest>`
    segments: list[Entry] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(e.size or 0 for e in self.segments)

    @property
    def newest(self) -> datetime | None:
        """The latest modification among the segments; None if any time is unknown."""
        times = [e.modified for e in self.segments]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)


def segment_path(set_path: str, number: int) -> str:
    """The path of segment `number` (from 1) of the set at `set_path`."""
    return f"{set_path}/{number:016d}"


def segment_set_of(segments_dir: str, path: str) -> str | None:
    """The inverse of `segment_path`: the set a segment at `path` belongs to, or None for a
    path that is not `<segments dir>/<3 hex>/<hex>/<16 digits>[.<8 hex>]`."""
    base = segments_dir.rstrip("/") + "/"
    if not path.startswith(base) or not _TAIL.fullmatch(path[len(base) :]):
        return None
    return path.rsplit("/", 1)[0]


def segment_sets(segments_dir: str, entries: Iterable[Entry]) -> dict[str, SegmentSet]:
    """Group walked entries under `segments_dir` by segment set. Entries that are not
    `<3 hex>/<hex>/<16 digits>[.<8 hex>]` are not segments and are left out."""
    sets: dict[str, SegmentSet] = {}
    for entry in entries:
        set_path = segment_set_of(segments_dir, entry.path)
        if set_path is not None:
            sets.setdefault(set_path, SegmentSet(set_path)).segments.append(entry)
    return sets
