"""The listing of `blobs/`, kept for a second look: on Swift with the manifest-facts cache
on, one walk tells both whether a cached manifest is still valid (the listed MD5, see
`facts.validity`) and, after the mark, which blobs the plan deletes. Kept in a `KeyMap`,
so that ten million blobs spill to disk."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from regtool.gc.spill import IN_MEMORY, KeyMap, pack_time, unpack_time
from regtool.layout.blobs import walk_blobs
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.storage.base import Entry, set_aside_temporaries

#: What is kept of a blob's entry (its path is `V2Layout.blob_data` of its digest):
#: (algorithm, size, modified as `spill.pack_time`, checksum).
_Kept = tuple[str, int | None, int | None, str | None]


class BlobListing:
    """digest -> listing entry of every blob, from one walk of `blobs/`."""

    def __init__(self, layout: V2Layout, threshold: int = IN_MEMORY):
        self.layout = layout
        self._map: KeyMap[_Kept] = KeyMap(threshold=threshold)

    @classmethod
    def of(
        cls,
        layout: V2Layout,
        temporaries: list[Entry],
        threshold: int,
        walk: Iterable[Entry],
    ) -> BlobListing:
        """The listing of `walk`, a walk of `blobs/` (with temporaries); writers' temp files
        met are appended to `temporaries`."""
        listing = cls(layout, threshold)
        listing._map.update(
            (d.hex, (d.algorithm, e.size, pack_time(e.modified), e.checksum))
            for d, e in walk_blobs(layout, set_aside_temporaries(walk, temporaries))
        )
        return listing

    def add(self, digest: Digest, entry: Entry) -> None:
        """Keep one more blob's entry."""
        self._map[digest.hex] = (
            digest.algorithm,
            entry.size,
            pack_time(entry.modified),
            entry.checksum,
        )

    def _entry(self, digest: Digest, kept: _Kept) -> Entry:
        _, size, modified, checksum = kept
        path = self.layout.blob_data(digest)
        return Entry(path, size=size, modified=unpack_time(modified), checksum=checksum)

    def entry(self, digest: Digest) -> Entry | None:
        """The blob's entry as listed; None for a blob the walk did not meet."""
        kept = self._map.get(digest.hex)
        if kept is None or kept[0] != digest.algorithm:
            return None
        return self._entry(digest, kept)

    def __iter__(self) -> Iterator[tuple[Digest, Entry]]:
        """Every blob listed, as `layout.blobs.walk_blobs` gives them."""
        for hexpart, kept in self._map.items():
            digest = Digest(kept[0], hexpart)
            yield digest, self._entry(digest, kept)

    def close(self) -> None:
        """Remove what spilled to disk."""
        self._map.close()
