"""Reading manifests from a V2 store, children of indexes included, many at a time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from regtool.concurrency import DEFAULT_JOBS, map_outcomes
from regtool.errors import ManifestInvalid, is_fault, raise_faults
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest, Manifest, parse_manifest


class ManifestReader:
    """Fetches and parses manifests once each. Damage is kept as `ManifestInvalid`
    (missing blob, not JSON, unknown format) so callers can report and go on; a storage
    fault (see `errors.is_fault`) is raised by `fetch`, since it says nothing about the
    manifest."""

    def __init__(self, layout: V2Layout, jobs: int = DEFAULT_JOBS):
        self.layout = layout
        self.jobs = jobs
        self.cache: dict[Digest, Manifest | Exception] = {}

    def _read(self, digest: Digest) -> Manifest:
        data = self.layout.read_manifest_bytes(digest)
        try:
            return parse_manifest(data)
        except ManifestInvalid as e:
            raise ManifestInvalid(f"manifest {digest}: {e}") from None

    def fetch(self, digests: Iterable[Digest]) -> None:
        """Read `digests` and, level by level, every child of the indexes among them.
        Raises the first storage fault met (the manifests read so far stay cached)."""
        todo = {d for d in digests if d not in self.cache}
        while todo:
            outcomes = map_outcomes(self._read, todo, self.jobs)
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
