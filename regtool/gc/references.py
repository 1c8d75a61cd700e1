"""What gc remembers of each manifest: only what it points at, keyed compactly.

gc marks by *blob key*: a digest's hex. The hex alone names a blob (sha256 and sha512
hex differ in length) and is the one string every `Digest` of that blob shares (digests
are interned when parsed), so a key costs a set slot or a tuple slot and no object of its
own: for a million blobs, about 60 MB less than a `Digest` per reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from regtool.concurrency import DEFAULT_JOBS
from regtool.errors import ManifestInvalid
from regtool.facts import ManifestFacts
from regtool.gc.spill import IN_MEMORY, KeyMap
from regtool.layout.manifests import ManifestReader
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest, Manifest

BlobKey = str


def blob_key(digest: Digest) -> BlobKey:
    return digest.hex


@dataclass(frozen=True, slots=True)
class References:
    """What a manifest points at, and nothing else of it."""

    blobs: tuple[BlobKey, ...]  # config and layers
    children: tuple[Digest, ...]  # manifests of an index
    subject: Digest | None

    @classmethod
    def of(cls, manifest: Manifest) -> References:
        return cls(
            tuple(blob_key(d.digest) for d in manifest.blobs),
            tuple(c.digest for c in manifest.manifests),
            manifest.subject.digest if manifest.subject else None,
        )


#: `References` as plain data (a dataclass pickles field by field, several times slower):
#: (blob keys, children as `algorithm:hex`, subject as `algorithm:hex` or None).
_Packed = tuple[tuple[BlobKey, ...], tuple[str, ...], str | None]


def _digest(text: str) -> Digest:
    algorithm, _, hexpart = text.partition(":")  # written by `_pack`: valid
    return Digest(algorithm, hexpart)


def _pack(refs: References) -> _Packed:
    subject = str(refs.subject) if refs.subject is not None else None
    return refs.blobs, tuple(map(str, refs.children)), subject


def _unpack(packed: _Packed) -> References:
    blobs, children, subject = packed
    return References(
        blobs, tuple(map(_digest, children)), _digest(subject) if subject is not None else None
    )


class ReferenceCache:
    """manifest digest -> its `References`, or the damage that kept it from being read
    (`ManifestInvalid`, its text kept): the `ManifestReader.cache` of gc, in a `KeyMap`,
    so that a million manifests spill to disk past `threshold`."""

    def __init__(self, threshold: int = IN_MEMORY):
        self._map: KeyMap[_Packed | str] = KeyMap(threshold=threshold)

    @staticmethod
    def _key(digest: Digest) -> str:
        return digest.hex  # sha256 and sha512 hex differ in length

    def get(self, digest: Digest) -> References | Exception | None:
        found = self._map.get(self._key(digest))
        if found is None:
            return None
        return ManifestInvalid(found) if isinstance(found, str) else _unpack(found)

    def __getitem__(self, digest: Digest) -> References | Exception:
        found = self.get(digest)
        if found is None:
            raise KeyError(digest)
        return found

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, Digest) and self._key(digest) in self._map

    def __len__(self) -> int:
        return len(self._map)

    def update(self, pairs: Iterable[tuple[Digest, References | Exception]]) -> None:
        self._map.update(
            (self._key(d), _pack(found) if isinstance(found, References) else str(found))
            for d, found in pairs
        )

    def close(self) -> None:
        """Remove what spilled to disk; the cache is empty afterwards."""
        self._map.close()


class ReferenceReader(ManifestReader):
    """A `ManifestReader` whose cache keeps only each manifest's `References`, spilled to
    disk past `threshold` manifests: for a garbage collection over millions of blobs."""

    def __init__(
        self,
        layout: V2Layout,
        jobs: int = DEFAULT_JOBS,
        facts: ManifestFacts | None = None,
        threshold: int = IN_MEMORY,
    ):
        super().__init__(layout, jobs, facts)
        self.references = ReferenceCache(threshold)
        self.cache = self.references  # type: ignore[assignment]

    def _read(self, digest: Digest) -> References:
        return References.of(self._manifest(digest))

    def _children(self, manifest: Any) -> Iterable[Digest]:
        return manifest.children  # type: ignore[no-any-return]
