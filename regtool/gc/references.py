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

from regtool.layout.manifests import ManifestReader
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


class ReferenceReader(ManifestReader):
    """A `ManifestReader` whose cache keeps only each manifest's `References`: a tenth of
    the memory, for a garbage collection over millions of blobs."""

    def _read(self, digest: Digest) -> References:
        return References.of(self._manifest(digest))

    def _children(self, manifest: Any) -> Iterable[Digest]:
        return manifest.children  # type: ignore[no-any-return]
