"""What gc remembers of `repositories/` from its mark walk, compactly: the index of every
directory (repository or not yet), the paths modified within `min_age`, and a fingerprint
of every file, so that the re-check before deleting finds what changed without holding a
million entries. Memory follows the number of repositories and links, not their paths.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

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
    """A set of 64-bit file fingerprints at 8 bytes each (a Python set of ints costs ten
    times that): a sorted array, searched by bisection."""

    def __init__(self, values: Iterable[int]):
        self._sorted = array("q", sorted(values))

    def __contains__(self, value: int) -> bool:
        i = bisect_left(self._sorted, value)
        return i < len(self._sorted) and self._sorted[i] == value


#: What gc does with a directory below `repositories/` of an invalid name.
SKIPPED = "gc deletes nothing in it and keeps every blob it links"


def skipped_links(skipped: dict[str, RepositoryIndex]) -> set[Digest]:
    """Every blob the `_layers` and revision links of skipped directories name: kept, so
    that renaming such a directory to a valid name gives back whole images. (An alias
    among them keeps only itself: its target is kept by the canonical link distribution
    writes beside it.)"""
    return set().union(*(d.layers | d.revisions for d in skipped.values()))


@dataclass
class RepositoriesSnapshot:
    # every directory below repositories/ of a valid name; `everywhere.skipped`: the rest
    everywhere: Repositories
    young_paths: set[str]
    fingerprints: Fingerprints
    temporaries: list[Entry]  # writers' temp files (those in uploads are upload files too)

    @property
    def repositories(self) -> dict[str, RepositoryIndex]:
        """Only the directories that are repositories (they have `_manifests`)."""
        return {n: r for n, r in self.everywhere.items() if r.has_manifests}

    def young_revisions(self, layout: V2Layout) -> dict[str, set[Digest]]:
        return {
            n: {d for d in r.revisions if layout.revision_link(n, d) in self.young_paths}
            for n, r in self.repositories.items()
        }

    def young_layers(self, layout: V2Layout) -> dict[str, set[Digest]]:
        """Per directory, the blobs its young `_layers` links name, in repositories and in
        directories without manifests yet (a first push, a mount)."""
        found: dict[str, set[Digest]] = {}
        if not self.young_paths:
            return found
        for name, repo in self.everywhere.items():
            found[name] = {d for d in repo.layers if layout.layer_link(name, d) in self.young_paths}
        return found

    def uploads(self) -> dict[tuple[str, str], list[Entry]]:
        """(directory name, upload id) -> the upload's files, in every directory."""
        found: dict[tuple[str, str], list[Entry]] = {}
        for name, repo in self.everywhere.items():
            for upload_id, files in repo.uploads.items():
                found[(name, upload_id)] = files
        return found


def walk_repositories(layout: V2Layout) -> Iterator[Entry]:
    """Every file below `repositories/`, writers' temp files included (marked)."""
    return layout.driver.walk(layout.repositories_dir(), temporaries=True)


def take_snapshot(layout: V2Layout, cutoff: datetime) -> RepositoriesSnapshot:
    """One walk of `repositories/`, remembered compactly."""
    young_paths: set[str] = set()
    fingerprints = array("q")
    temporaries: list[Entry] = []

    def remember(entries: Iterable[Entry]) -> Iterator[Entry]:
        for entry in entries:
            fingerprints.append(fingerprint(entry))
            if young(entry, cutoff):
                young_paths.add(entry.path)
            if entry.temporary:
                temporaries.append(entry)
            yield entry

    # Temp files pass on too: one in `_uploads/<uuid>/` is a file of its upload.
    everywhere = layout.index_entries(remember(walk_repositories(layout)), include_all=True)
    # nothing in a skipped directory is gc's to delete, its temp files neither
    skipped = tuple(f"{layout.repositories_dir()}/{name}/" for name in everywhere.skipped)
    temporaries = [e for e in temporaries if not e.path.startswith(skipped)]
    return RepositoriesSnapshot(everywhere, young_paths, Fingerprints(fingerprints), temporaries)
