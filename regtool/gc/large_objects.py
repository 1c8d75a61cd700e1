"""Large objects (Swift DLOs) in gc: the segment set each one's manifest names, their
sizes, and which segments a deletion may take.

A DLO's manifest names its segments by a prefix (`X-Object-Manifest`), and nothing stops
two manifests from naming one set. distribution, and regtool before it, moved a DLO by
writing the manifest at its new path before deleting the old one, so a crash between
leaves an upload and a blob naming the same set; a server-side COPY with
`?multipart-manifest=get` makes another. Deleting a set that a kept object still names
makes that object read as empty. So gc deletes a doomed object's segments only when no
large object it keeps names them, and otherwise the manifest alone.

Knowing that takes the set of every kept large object (the blobs of `blobs/` and the data
of uploads that stay): a HEAD of its manifest alone, kept in the facts cache while the
object's listing entry is unchanged (`facts.validity.large_object_validator`), so that a
warm run makes none. A large object anywhere else (outside `blobs/` and `_uploads/`, or
outside the store's root) is not gc's to know.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import islice

from regtool.concurrency import map_outcomes
from regtool.errors import PathNotFound
from regtool.facts import ManifestFacts
from regtool.layout.segments import SegmentSet
from regtool.layout.v2 import V2Layout
from regtool.storage.base import Driver, Entry, LargeObject

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
        self.heads = 0  # HEADs made (for tests and the benchmark)
        self._early: dict[str, tuple[Entry, str | PathNotFound | None]] = {}
        self._prefetch: threading.Thread | None = None
        self._stopping = threading.Event()

    def prefetch(self, entries: list[Entry]) -> None:
        """Begin finding the sets of `entries` (at most `PREFETCH` of them) in a thread of
        its own, while gc does other work: on Swift the HEADs wait on the storage, as the
        walk of `repositories/` and the mark do. `of` takes what it found (asking again
        what failed) once it ends; `close` stops it."""
        early = entries[:PREFETCH]
        self._prefetch = threading.Thread(
            target=self._find_early, args=(early,), name="gc-segment-names", daemon=True
        )
        self._prefetch.start()

    def _find_early(self, entries: list[Entry]) -> None:
        for chunk in _chunks(entries, CHUNK):
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
        raise_faults(named.values())
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
        self.heads += len(todo)
        named = map_outcomes(lambda e: self.driver.segment_set(e.path), todo, self.jobs)
        for entry, outcome in named.items():
            found[entry.path] = outcome
            if self.facts is not None and not isinstance(outcome, Exception):
                self.facts.put_segment_set(entry, outcome)
        return found


class Sizer:
    """Sizes and segment paths of the large objects gc deletes, from the one walk of
    `segments/` (`sets`) and the set each names (`SegmentNames`); a full HEAD
    (`Driver.large_object`) sizes any other. `keep_shared` then finds the doomed sets
    that a kept object names too: those stay."""

    def __init__(self, layout: V2Layout, sets: dict[str, SegmentSet], names: SegmentNames):
        self.layout, self.sets, self.names = layout, sets, names
        self.heads: dict[str, LargeObject | Exception | None] = {}
        #: doomed segment set -> a kept large object that names it too
        self.kept_sets: dict[str, str] = {}

    def head_all(self, entries: Iterable[Entry]) -> None:
        """Learn the sets and sizes of the objects `entries` list. An object deleted since
        it was listed is remembered as such; anything else that fails is raised."""
        todo = [e for e in entries if e.path not in self.heads]
        heads: dict[str, LargeObject | Exception | None] = {}
        for path, found in self.names.of(todo).items():
            if isinstance(found, PathNotFound):
                heads[path] = found
            elif found is not None and found in self.sets:
                heads[path] = LargeObject(self.sets[found].size, found)
        unsized = [e.path for e in todo if e.path not in heads]  # plain, or not walked
        heads.update(map_outcomes(self.layout.driver.large_object, unsized, self.names.jobs))
        raise_faults(heads.values())
        self.heads.update(heads)

    def needs_head(self, entry: Entry) -> bool:
        return self.layout.driver.has_large_objects and not entry.size

    def keep_shared(self, kept: Iterable[Entry], every_set: bool = False) -> set[str]:
        """Read what each kept large object `kept` lists names, `CHUNK` at a time, and
        note in `kept_sets` each set of a doomed object (one `head_all` read) with a
        segment it reads too. An `X-Object-Manifest` names a prefix: every object whose
        name begins with it is a segment of that object, also of another set (a prefix
        cut short names several). Returns every prefix named by a kept or a doomed object
        when `every_set` (what orphaned sets are told from), else an empty set; without
        doomed sets and `every_set`, nothing is read."""
        owners = {  # each doomed segment -> its set
            segment.path: set_path
            for head in self.heads.values()
            if isinstance(head, LargeObject)
            and (set_path := head.segment_set) is not None
            and (found := self.sets.get(set_path)) is not None
            for segment in found.segments
        }
        doomed = sorted(owners)
        if not doomed and not every_set:
            return set()
        named = {
            h.segment_set
            for h in self.heads.values()
            if every_set and isinstance(h, LargeObject) and h.segment_set is not None
        }
        for chunk in _chunks(kept, CHUNK):
            for path, prefix in self.names.of(chunk).items():
                if not isinstance(prefix, str):
                    continue  # a plain object, or gone: it names nothing
                for segment in _beginning_with(doomed, prefix):
                    self.kept_sets.setdefault(owners[segment], path)
                if every_set:
                    named.add(prefix)
        return named

    def resolve(self, entry: Entry) -> tuple[tuple[str, ...], int | None] | str:
        """(paths to delete, size freed) for the object at `entry`, or why it must stay.
        A set that a kept object names too is not among the paths (`shared_with`)."""
        if not self.needs_head(entry):
            return (entry.path,), entry.size
        head = self.heads.get(entry.path)
        if isinstance(head, Exception):  # head_all raised any other failure
            return "gone since it was listed"
        if head is None or head.segment_set is None:
            return (entry.path,), (head.size if head else entry.size)
        if head.segment_set in self.kept_sets:
            return (entry.path,), 0
        found = self.sets.get(head.segment_set)
        if found is None:  # no segments of its own (or a prefix of others'): none go
            return (entry.path,), 0
        return (entry.path, *(e.path for e in found.segments)), found.size

    def shared_with(self, entry: Entry) -> str | None:
        """The kept large object that names the set of the doomed one at `entry`, if any:
        its segments stay."""
        head = self.heads.get(entry.path)
        if isinstance(head, LargeObject) and head.segment_set:
            return self.kept_sets.get(head.segment_set)
        return None


def raise_faults(outcomes: Iterable[object]) -> None:
    """Raises the first failure among `outcomes` other than `PathNotFound` (an object
    deleted since it was listed)."""
    for outcome in outcomes:
        if isinstance(outcome, Exception) and not isinstance(outcome, PathNotFound):
            raise outcome


def _beginning_with(paths: list[str], prefix: str) -> Iterator[str]:
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


def _chunks(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    it = iter(entries)
    while chunk := list(islice(it, size)):
        yield chunk
