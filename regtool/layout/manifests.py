"""Reading manifests from a V2 store, children of indexes included, many at a time,
through the manifest-facts cache (`regtool.facts`) when one is given."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from regtool.concurrency import DEFAULT_JOBS, map_outcomes
from regtool.errors import ManifestInvalid, is_fault, raise_faults
from regtool.facts import ManifestFacts
from regtool.layout.blobs import walk_blobs
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest, Manifest, parse_manifest
from regtool.storage.base import Entry

#: distribution's limit on a manifest body: no manifest blob is larger.
MAX_MANIFEST_SIZE = 4 << 20

T = TypeVar("T")


def store_identity(layout: V2Layout) -> str:
    """What names a store in the facts cache: where its driver points (no secrets) and
    the layout's root in it."""
    return f"{layout.driver.describe()}#{layout.root}"


class ManifestEntries:
    """The listing entries of manifest blobs, which say whether a cached fact is still
    valid (`facts.validity`). Where listings carry checksums (Swift), one walk of
    `blobs/` for the digests announced with `expect`: a listing page names 10,000 objects,
    where a HEAD names one. Elsewhere, and for a digest not announced, a stat each (local:
    a system call; SFTP: one round trip, not a read's three)."""

    def __init__(self, layout: V2Layout):
        self.layout = layout
        self.listed: dict[Digest, Entry] = {}
        self._expected: set[Digest] = set()
        self._walked = False
        self._lock = threading.Lock()  # the first caller walks; the others wait for it
        self._lookup: Callable[[Digest], Entry | None] | None = None

    def expect(self, digests: Iterable[Digest]) -> None:
        """Announce digests whose entries will be asked for (before the first `entry`)."""
        self._expected.update(digests)

    def use_listing(self, lookup: Callable[[Digest], Entry | None]) -> None:
        """Take entries from `lookup`, over a walk of `blobs/` the caller made (gc: one
        walk serves its plan and this), instead of walking here; a digest it does not
        find is stat'ed."""
        self._lookup = lookup

    def entry(self, digest: Digest) -> Entry:
        """The blob's entry: `PathNotFound` when the blob is missing."""
        if self._lookup is not None:
            found = self._lookup(digest)
            return (
                found
                if found is not None
                else self.layout.driver.stat(self.layout.blob_data(digest))
            )
        if self.layout.driver.listed_checksums and not self._walked:
            with self._lock:
                if not self._walked:
                    self._walk()
        found = self.listed.get(digest)
        return (
            found if found is not None else self.layout.driver.stat(self.layout.blob_data(digest))
        )

    def list_small(self, most: int) -> None:
        """Keep the entry of every blob of 1 to `most` bytes, from one walk of `blobs/`,
        for digests not known yet (a manifest is never larger than the registry's limit;
        a large object lists as 0 bytes and is never cached). Meant to run beside the
        listing that tells which manifests are wanted; `entry` then needs no walk."""
        small = {d: _kept(e) for d, e in walk_blobs(self.layout) if e.size and e.size <= most}
        with self._lock:
            self.listed.update(small)
            self._walked = True

    def _walk(self) -> None:
        if self._expected:
            expected = self._expected
            self.listed.update((d, _kept(e)) for d, e in walk_blobs(self.layout) if d in expected)
        self._expected = set()
        self._walked = True


def _kept(entry: Entry) -> Entry:
    """What validity needs of a listed entry (`facts.validity`): a gc over a million
    manifests keeps one each, so no path, and no time where a checksum stands for it."""
    if entry.checksum is not None:
        return Entry("", size=entry.size, checksum=entry.checksum)
    return Entry("", size=entry.size, modified=entry.modified)


class ManifestReader:
    """Fetches and parses manifests once each. Damage is kept as `ManifestInvalid`
    (missing blob, not JSON, unknown format) so callers can report and go on; a storage
    fault (see `errors.is_fault`) is raised by `fetch`, since it says nothing about the
    manifest.

    With `facts`, a manifest whose blob entry (`ManifestEntries`) still matches what the
    cache kept is not read at all; one read is kept there. Call `expect` with the digests
    about to be fetched (a repository's revisions) so that Swift lists them at once."""

    def __init__(
        self, layout: V2Layout, jobs: int = DEFAULT_JOBS, facts: ManifestFacts | None = None
    ):
        self.layout = layout
        self.jobs = jobs
        self.cache: dict[Digest, Manifest | Exception] = {}
        self.facts = facts if facts is not None and facts.enabled else None
        self.entries = ManifestEntries(layout)
        #: Facts `known` found, until `_manifest` takes them.
        self._known: dict[Digest, Manifest] = {}
        #: Manifest bytes (or why not) `fetch` read together, until `_manifest` takes them.
        self._read_ahead: dict[Digest, bytes | Exception] = {}

    def expect(self, digests: Iterable[Digest]) -> None:
        """Announce manifests likely to be fetched (see `ManifestEntries.expect`)."""
        if self.facts is not None:
            self.entries.expect(digests)

    def beside_blob_listing(self, listing: Callable[[], T]) -> T:
        """`listing()` (the walk that tells which manifests are wanted), with, where the
        cache is on and listings carry checksums (Swift), the walk of `blobs/` for the
        facts' validity running beside it: the two take one listing's time, not two."""
        if self.facts is None or not self.layout.driver.listed_checksums:
            return listing()
        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(self.entries.list_small, MAX_MANIFEST_SIZE)
            try:
                return listing()
            finally:
                ahead.result()

    def _parse(self, digest: Digest, data: bytes) -> Manifest:
        try:
            return parse_manifest(data)
        except ManifestInvalid as e:
            raise ManifestInvalid(f"manifest {digest}: {e}") from None

    def _manifest(self, digest: Digest) -> Manifest:
        """The parsed manifest, from the cache where valid, else read (and kept)."""
        if (known := self._known.pop(digest, None)) is not None:
            return known
        if self.facts is None:
            return self._parse(digest, self._bytes(digest))
        try:
            entry = self.entries.entry(digest)
        except FileNotFoundError:
            raise ManifestInvalid(f"manifest {digest} is missing from blob storage") from None
        known = self.facts.get(digest, entry)
        if known is not None:
            return known
        manifest = self._parse(digest, self.layout.read_manifest_bytes(digest))
        self.facts.put(digest, entry, manifest)
        return manifest

    def _bytes(self, digest: Digest) -> bytes:
        """The manifest's bytes: read ahead by `fetch`, else read now."""
        ahead = self._read_ahead.pop(digest, None)
        if ahead is None:
            return self.layout.read_manifest_bytes(digest)
        if isinstance(ahead, Exception):
            raise ahead
        return ahead

    def known(self, digests: Iterable[Digest]) -> dict[Digest, tuple[Manifest, int]]:
        """The manifests (with their sizes in bytes) among `digests` that listed entries
        and valid facts tell without a request or a thread: one query of the cache for
        all. The others must be read (`get`, `sized`)."""
        if self.facts is None:
            return {}
        listed = self.entries.listed
        entries = {d: e for d in digests if (e := listed.get(d)) is not None and e.size}
        found = self.facts.get_many(entries)
        return {d: (m, entries[d].size or 0) for d, m in found.items()}

    def sized(self, digest: Digest) -> tuple[Manifest, int]:
        """A manifest and its size in bytes, from the cache where valid (the size is its
        blob's, which the validator holds), else read; not kept in `self.cache`.
        `ManifestInvalid` as `get`, and storage faults."""
        if self.facts is not None:
            try:
                entry = self.entries.entry(digest)
            except FileNotFoundError:
                raise ManifestInvalid(f"manifest {digest} is missing from blob storage") from None
            known = self.facts.get(digest, entry)
            if known is not None and entry.size is not None:
                return known, entry.size
        data = self.layout.read_manifest_bytes(digest)
        manifest = self._parse(digest, data)
        if self.facts is not None:
            self.facts.put(digest, entry, manifest)
        return manifest, len(data)

    def _read(self, digest: Digest) -> Any:
        """What the cache keeps of a manifest (subclasses keep less)."""
        return self._manifest(digest)

    def fetch(self, digests: Iterable[Digest]) -> None:
        """Read `digests` and, level by level, every child of the indexes among them.
        Raises the first storage fault met (the manifests read so far stay cached)."""
        todo = {d for d in digests if d not in self.cache}
        while todo:
            known = self.known(todo)
            self._known.update((d, m) for d, (m, _) in known.items())
            # what the cache told needs no worker thread; the rest is read
            outcomes = map_outcomes(self._read, known, 1)
            rest = todo - known.keys()
            if self.facts is None:  # no fact spares a read: every manifest read together
                self._read_ahead = self.layout.read_manifests_bytes(rest, self.jobs)
                outcomes.update(map_outcomes(self._read, rest, 1))
            else:
                outcomes.update(map_outcomes(self._read, rest, self.jobs))
            self.cache.update((d, o) for d, o in outcomes.items() if not is_fault(o))
            raise_faults(outcomes.values())
            children = {
                child
                for d in todo
                if not isinstance(m := self.cache[d], Exception)
                for child in self._children(m)
            }
            todo = {d for d in children if d not in self.cache}

    def _children(self, manifest: Any) -> Iterable[Digest]:
        return (child.digest for child in manifest.manifests)

    def get(self, digest: Digest) -> Manifest:
        """A fetched manifest; `ManifestInvalid` for one that cannot be read as one, and
        whatever storage fault `fetch` meets."""
        if digest not in self.cache:
            self.fetch([digest])
        result = self.cache[digest]
        if isinstance(result, Exception):
            if isinstance(result, ManifestInvalid):
                raise result
            raise ManifestInvalid(f"manifest {digest}: {result}") from result
        return result
