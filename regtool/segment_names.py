"""Which segments each large object (a Swift DLO) reads: what gc and the server's upload
purging must know before they delete a large object's segments.

A DLO's manifest names its segments by a prefix (`X-Object-Manifest`): every object whose
name begins with it is one of its segments, and nothing stops two manifests from naming
the same ones. distribution (and regtool before it) moved a DLO by writing the manifest at
its new path before deleting the old one, so a crash between leaves an upload and a blob
naming one set; a server-side COPY with `?multipart-manifest=get` makes another. Deleting
segments that a kept object still names makes it read short or empty.

Only a HEAD of an object's manifest tells what it names (`Driver.segment_set`: the set
below the driver's segment root, or None); `SegmentNames` asks it once per object and
keeps the answer in the facts cache while the object's listing entry is unchanged
(`facts.validity.large_object_validator`).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import islice

from regtool.concurrency import map_outcomes, raise_unless_missing
from regtool.errors import PathNotFound
from regtool.facts import ManifestFacts
from regtool.storage.base import Driver, Entry

#: Large objects whose sets are looked up (cache query, then HEADs) at once.
CHUNK = 1000
#: Large objects whose sets `SegmentNames.prefetch` finds at most (the rest when asked).
PREFETCH = 200_000


class SegmentNames:
    """Which segment set each large object's manifest names: the facts cache's answer
    while the object's listing entry is unchanged, else a HEAD of the manifest alone
    (`Driver.segment_set`), which is then kept."""

    def __init__(self, driver: Driver, facts: ManifestFacts | None, jobs: int):
        self.driver, self.facts, self.jobs = driver, facts, jobs
        self._early: dict[str, tuple[Entry, str | PathNotFound | None]] = {}
        self._prefetch: threading.Thread | None = None
        self._stopping = threading.Event()

    def prefetch(self, entries: list[Entry]) -> None:
        """Begin finding the sets of `entries` (the caller keeps them to `PREFETCH`) in a thread of
        its own, while gc does other work: on Swift the HEADs wait on the storage, as the
        walk of `repositories/` and the mark do. `of` takes what it found (asking again
        what failed) once it ends; `close` stops it."""
        self._prefetch = threading.Thread(
            target=self._find_early, args=(entries,), name="gc-segment-names", daemon=True
        )
        self._prefetch.start()

    def _find_early(self, entries: list[Entry]) -> None:
        for chunk in chunks(entries, CHUNK):
            if self._stopping.is_set():
                return
            found = self._find(chunk)
            self._early.update(
                (e.path, (e, outcome))
                for e in chunk
                if not isinstance(outcome := found[e.path], Exception)
                or isinstance(outcome, PathNotFound)
            )

    def close(self) -> None:
        """Stop a prefetch still under way and wait for its thread."""
        self._stopping.set()
        if self._prefetch is not None:
            self._prefetch.join()

    def of(self, entries: Iterable[Entry]) -> dict[str, str | PathNotFound | None]:
        """path -> the set (driver path), None for a plain object, or `PathNotFound` for
        one deleted since it was listed. Any other failure (a storage fault) is raised."""
        if self._prefetch is not None:
            self._prefetch.join()
        found: dict[str, str | PathNotFound | None] = {}
        todo = []
        for entry in entries:
            early = self._early.get(entry.path)
            if early is not None and early[0] == entry:
                found[entry.path] = early[1]
            else:
                todo.append(entry)
        named = self._find(todo)
        raise_unless_missing(named.values())
        for path, outcome in named.items():
            assert not isinstance(outcome, Exception) or isinstance(outcome, PathNotFound)
            found[path] = outcome
        return found

    def _find(self, entries: list[Entry]) -> dict[str, str | Exception | None]:
        """The cache's answers, then a HEAD of each other object; each failure given as
        the exception it raised. What a HEAD finds is kept in the cache."""
        wanted = {e.path: e for e in entries}
        found: dict[str, str | Exception | None] = {}
        if self.facts is not None:
            found.update(self.facts.segment_sets(wanted.values()))
        todo = [e for path, e in wanted.items() if path not in found]
        named = map_outcomes(lambda e: self.driver.segment_set(e.path), todo, self.jobs)
        for entry, outcome in named.items():
            found[entry.path] = outcome
            if self.facts is not None and not isinstance(outcome, Exception):
                self.facts.put_segment_set(entry, outcome)
        return found


def beginning_with(paths: list[str], prefix: str) -> Iterator[str]:
    """The paths of sorted `paths` that begin with `prefix`."""
    at = bisect_left(paths, prefix)
    while at < len(paths) and paths[at].startswith(prefix):
        yield paths[at]
        at += 1


def named_segment(named: set[str], path: str, segments_dir: str) -> bool:
    """Whether one of the prefixes `named` (what large objects' manifests name, each
    below `segments_dir`) begins the segment at `path`."""
    start = len(segments_dir.rstrip("/")) + 1
    return any(path[:end] in named for end in range(start, len(path) + 1))


def chunks(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    it = iter(entries)
    while chunk := list(islice(it, size)):
        yield chunk
