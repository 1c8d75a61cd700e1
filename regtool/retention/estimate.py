"""How many bytes a gc would free after a retention run: the blobs (manifests, configs,
layers) that deleted manifests use and no manifest that stays uses, anywhere in the
store. Blob data is shared by every repository, so a layer of a deleted image that a
kept image of another repository has frees nothing."""

from __future__ import annotations

from collections.abc import Iterable

from regtool.errors import ManifestInvalid
from regtool.layout.manifests import ManifestReader
from regtool.oci import Digest


def blobs_of(
    roots: Iterable[Digest], reader: ManifestReader, sizes: dict[Digest, int | None]
) -> set[Digest]:
    """Every blob `roots` use: the manifests themselves, index children (recursively),
    configs and layers; `sizes` gets each one's size where known (a manifest's from
    `manifest_sizes`, a blob's from the descriptor that names it)."""
    found: set[Digest] = set()
    stack = list(roots)
    while stack:
        digest = stack.pop()
        if digest in found:
            continue
        found.add(digest)
        try:
            manifest = reader.get(digest)
        except ManifestInvalid:
            continue
        for blob in manifest.blobs:
            found.add(blob.digest)
            if blob.size is not None:
                sizes.setdefault(blob.digest, blob.size)
        stack.extend(child.digest for child in manifest.manifests)
    return found


def freed_bytes(
    deleted: Iterable[Digest],
    staying: Iterable[Digest],
    reader: ManifestReader,
    manifest_sizes: dict[Digest, int],
) -> int:
    """Bytes of the blobs only `deleted` manifests use; `staying` are every manifest of
    the store that stays (in every repository). `reader` must have fetched them all."""
    sizes: dict[Digest, int | None] = dict(manifest_sizes)
    gone = blobs_of(deleted, reader, sizes)
    kept = blobs_of(staying, reader, sizes)
    return sum(sizes.get(d) or 0 for d in gone - kept)
