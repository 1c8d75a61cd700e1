"""Large objects (Swift DLOs) in gc: their sizes, and which segments a deletion may take.

gc deletes a doomed object's segments only when no large object it keeps reads any of
them (`regtool.segment_names` says why two can), and otherwise the manifest alone.
Knowing that takes what every kept large object names (the blobs of `blobs/` and the
data of uploads that stay): one HEAD each, cached, so that a warm run makes none. A large
object anywhere else (outside `blobs/` and `_uploads/`, or outside the store's root) is
not gc's to know."""

from __future__ import annotations

from collections.abc import Iterable

from regtool.concurrency import map_outcomes, raise_unless_missing
from regtool.errors import PathNotFound
from regtool.layout.segments import SegmentSet
from regtool.layout.v2 import V2Layout
from regtool.segment_names import CHUNK, SegmentNames, beginning_with, chunks
from regtool.storage.base import Entry, LargeObject


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
        self._counted: set[str] = set()  # sets whose size an item carries

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
        raise_unless_missing(heads.values())
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
        for chunk in chunks(kept, CHUNK):
            for path, prefix in self.names.of(chunk).items():
                if not isinstance(prefix, str):
                    continue  # a plain object, or gone: it names nothing
                for segment in beginning_with(doomed, prefix):
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
        # Two doomed objects naming one set both list its segments (the re-check may
        # keep either, `sweep`), but its bytes are counted once.
        size = 0 if found.path in self._counted else found.size
        self._counted.add(found.path)
        return (entry.path, *(e.path for e in found.segments)), size

    def shared_with(self, entry: Entry) -> str | None:
        """The kept large object that names the set of the doomed one at `entry`, if any:
        its segments stay."""
        head = self.heads.get(entry.path)
        if isinstance(head, LargeObject) and head.segment_set:
            return self.kept_sets.get(head.segment_set)
        return None
