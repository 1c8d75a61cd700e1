"""Aliases: `_layers` links at a digest of another algorithm than sha256 that reach the
data of another digest.

distribution stores a blob pushed as `sha512:<hex>` under its sha256 digest and links the
sha512 digest to it (`V2Layout.resolve_blob`), so a manifest referencing the sha512
digest needs the sha256 data: gc marks both. Only reading the link tells its target (a
Swift listing's MD5 cannot: the target is unknown), so gc reads every such link, one GET
each; a store pushed by sha256 digests alone has none.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping

from regtool.concurrency import map_outcomes
from regtool.errors import raise_faults
from regtool.gc.references import BlobKey, blob_key
from regtool.layout.v2 import CANONICAL_ALGORITHM, RepositoryIndex, V2Layout
from regtool.oci import Digest

#: directory name -> {digest of a `_layers` link -> the other digest whose data it reaches}
Aliases = dict[str, dict[Digest, Digest]]


def read_aliases(
    layout: V2Layout, links: Mapping[str, Iterable[Digest]], jobs: int
) -> tuple[Aliases, dict[str, str]]:
    """Read the non-canonical ones of `links` (directory name -> digests of its `_layers`
    links): (the aliases among them, directory -> a warning for one whose link names no
    blob, which may be an alias gone wrong). A link deleted since the walk reaches
    nothing. A storage fault is raised."""
    wanted = [
        (name, digest)
        for name, digests in links.items()
        for digest in digests
        if digest.algorithm != CANONICAL_ALGORITHM
    ]
    outcomes = map_outcomes(lambda nd: layout.resolve_blob(*nd), wanted, jobs)
    raise_faults(outcomes.values())
    aliases: Aliases = {}
    damaged: dict[str, str] = {}
    for (name, digest), outcome in sorted(outcomes.items()):
        if isinstance(outcome, FileNotFoundError):
            continue
        if isinstance(outcome, Exception):
            damaged.setdefault(name, f"{name}: _layers link of {digest} unreadable ({outcome})")
        elif outcome != digest:
            aliases.setdefault(name, {})[digest] = outcome
    return aliases, damaged


def reached(aliases: Mapping[Digest, Digest], keys: Container[BlobKey]) -> set[BlobKey]:
    """The blobs whose data the aliases among `keys` (one directory's) reach."""
    return {blob_key(target) for alias, target in aliases.items() if blob_key(alias) in keys}


def links_of(directories: Mapping[str, RepositoryIndex]) -> dict[str, set[Digest]]:
    """Directory name -> the digests of its `_layers` links, for `read_aliases`."""
    return {name: directory.layers for name, directory in directories.items()}
