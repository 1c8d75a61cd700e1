"""What gc remembers of `repositories/` from its mark walk: every file by its directory,
the paths modified within `min_age`, and a fingerprint of every file, so that the re-check
before deleting finds what changed. Past a threshold the files and the fingerprints are
on disk (`gc/spill.py`), and the mark indexes a batch of directories at a time: memory is
bounded however many repositories and links a store has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from regtool.gc.spill import IN_MEMORY, Groups, KeySet, pack_time, unpack_time
from regtool.layout.v2 import Repositories, RepositoryIndex, V2Layout
from regtool.oci import Digest
from regtool.storage.base import Entry


def young(entry: Entry | None, cutoff: datetime) -> bool:
    """Too new to delete: modified after `cutoff`, or of unknown age (kept, to be safe)."""
    return entry is None or entry.modified is None or entry.modified > cutoff


def fingerprint(entry: Entry) -> int:
    """Changes when a file is written again. A 64-bit hash: a collision hiding a change is
    about one in 10^13 for a million files."""
    return hash((entry.path, entry.size, entry.modified))


class Fingerprints:
    """A set of 64-bit file fingerprints: a `KeySet` of their hex, so that millions spill
    to disk."""

    def __init__(self, threshold: int = IN_MEMORY):
        self._keys = KeySet(threshold=threshold)

    @staticmethod
    def _key(value: int) -> str:
        return f"{value & 0xFFFF_FFFF_FFFF_FFFF:016x}"

    def add(self, value: int) -> None:
        self._keys.add(self._key(value))

    def __contains__(self, value: int) -> bool:
        return self._key(value) in self._keys

    def close(self) -> None:
        self._keys.close()


#: What gc does with a directory below `repositories/` of an invalid name.
SKIPPED = "gc deletes nothing in it and keeps every blob it links"


def skipped_links(skipped: dict[str, RepositoryIndex]) -> set[Digest]:
    """Every blob the `_layers` and revision links of skipped directories name: kept, so
    that renaming such a directory to a valid name gives back whole images. (An alias
    among them keeps only itself: its target is kept by the canonical link distribution
    writes beside it.)"""
    return set().union(*(d.layers | d.revisions for d in skipped.values()))


#: What a listed file of `repositories/` is kept as, until its directory is indexed:
#: (path, size, modified as `spill.pack_time`, temporary, checksum).
_Listed = tuple[str, int | None, int | None, bool, str | None]


@dataclass
class RepositoriesSnapshot:
    """What one walk of `repositories/` found: every file by its directory (`directories`,
    spilled to disk past the threshold), handed out a batch of directories at a time
    (`batches`), so that the index of a whole store is never held at once."""

    directories: Groups[_Listed]
    young_paths: set[str]
    fingerprints: Fingerprints | None  # without a re-check (a dry run): None
    temporaries: list[Entry]  # writers' temp files (those in uploads are upload files too)

    def batches(self, layout: V2Layout, most: int) -> Iterator[Repositories]:
        """The directories below `repositories/` (of valid names, and in `skipped` the
        rest), indexed a batch at a time: each batch holds whole directories, in name
        order, of about `most` files (more for one directory that has more)."""
        entries: list[Entry] = []
        for _, listed in self.directories.groups():
            entries += (
                Entry(p, size=s, modified=unpack_time(m), temporary=t, checksum=c)
                for p, s, m, t, c in listed
            )
            if len(entries) >= most:
                yield layout.index_entries(entries, include_all=True)
                entries = []
        if entries:
            yield layout.index_entries(entries, include_all=True)

    def young_revisions(self, layout: V2Layout, repos: Repositories) -> dict[str, set[Digest]]:
        """Per repository of `repos`, its revisions whose links are young."""
        return {
            n: {d for d in r.revisions if layout.revision_link(n, d) in self.young_paths}
            for n, r in repos.items()
            if r.has_manifests
        }

    def young_layers(self, layout: V2Layout, repos: Repositories) -> dict[str, set[Digest]]:
        """Per directory of `repos`, the blobs its young `_layers` links name, in
        repositories and in directories without manifests yet (a first push, a mount)."""
        found: dict[str, set[Digest]] = {}
        if not self.young_paths:
            return found
        for name, repo in repos.items():
            found[name] = {d for d in repo.layers if layout.layer_link(name, d) in self.young_paths}
        return found

    def close(self) -> None:
        """Remove what spilled to disk."""
        self.directories.close()
        if self.fingerprints is not None:
            self.fingerprints.close()


def uploads_of(repos: Repositories) -> dict[tuple[str, str], list[Entry]]:
    """(directory name, upload id) -> the upload's files, in every directory of `repos`."""
    return {
        (name, upload_id): files
        for name, repo in repos.items()
        for upload_id, files in repo.uploads.items()
    }


def walk_repositories(layout: V2Layout) -> Iterator[Entry]:
    """Every file below `repositories/`, writers' temp files included (marked)."""
    return layout.driver.walk(layout.repositories_dir(), temporaries=True)


def take_snapshot(
    layout: V2Layout, cutoff: datetime, *, recheck: bool = True, threshold: int = IN_MEMORY
) -> RepositoriesSnapshot:
    """One walk of `repositories/`, remembered: fingerprints only for a run that will
    re-check (`recheck`). Temp files are kept with their directories too: one in
    `_uploads/<uuid>/` is a file of its upload."""
    snapshot = RepositoriesSnapshot(
        Groups(threshold=threshold), set(), Fingerprints(threshold) if recheck else None, []
    )
    for entry in walk_repositories(layout):
        if snapshot.fingerprints is not None:
            snapshot.fingerprints.add(fingerprint(entry))
        if young(entry, cutoff):
            snapshot.young_paths.add(entry.path)
        if entry.temporary:
            snapshot.temporaries.append(entry)
        split = layout.split_repository_path(entry.path)
        if split is not None:
            modified = pack_time(entry.modified)
            listed = (entry.path, entry.size, modified, entry.temporary, entry.checksum)
            snapshot.directories.add(split[0], listed)
    return snapshot
