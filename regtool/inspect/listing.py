"""`regtool ls`: repositories and tags of a store, read straight from storage.

V2: one walk of `repositories/` (every tag link, with its modification time; not into
any repository's `_layers` or `_uploads`, where local and SFTP stores hold most of their
directories and a tag's listing needs nothing), then a read of each tag link whose
digest the listing does not already tell (see `RepositoryIndex.listed_tag_digest`: a tag
never re-pointed needs no read) and of each distinct manifest (index children included,
a level at a time), each kind together (`Driver.get_many`: `jobs` at a time; SFTP sends
them all on one channel, two round trips for the lot).
V1: one walk of `repositories/` and one of `images/`, then one GET per tag file and per
distinct ancestry. Damaged data becomes a warning; the rest is still listed. A storage
fault (`errors.is_fault`) is raised, ending the listing: it says nothing about the data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from regtool.concurrency import DEFAULT_JOBS, map_outcomes
from regtool.errors import NotFound, RegtoolError, is_fault, raise_faults
from regtool.facts import ManifestFacts
from regtool.layout.detect import Layout
from regtool.layout.manifests import ManifestReader
from regtool.layout.v1 import V1Image, V1Layout, canonical_name
from regtool.layout.v2 import Repositories, V2Layout
from regtool.oci import Descriptor, Digest, Manifest, check_name
from regtool.text import plural

log = logging.getLogger(__name__)

V1_MEDIA_TYPE = "application/vnd.docker.v1.image"


@dataclass
class TagInfo:
    tag: str
    digest: str | None = None
    image_id: str | None = None
    media_type: str | None = None
    kind: str | None = None  # image, index, artifact, schema1, v1 image
    platforms: list[str] = field(default_factory=list)
    size: int | None = None
    pushed: datetime | None = None
    #: Each counted blob (digest or V1 image id) with its size, for deduplicated totals.
    blob_sizes: dict[str, int] = field(default_factory=dict, repr=False)


@dataclass
class RepositoryInfo:
    name: str
    tags: list[TagInfo] = field(default_factory=list)


@dataclass
class Listing:
    location: str
    layout: str
    repositories: list[RepositoryInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Tag links read with a request: those the listing did not tell (see the docstring).
    tag_links_read: int = 0

    @property
    def tag_count(self) -> int:
        return sum(len(r.tags) for r in self.repositories)

    @property
    def total_size(self) -> int:
        """Bytes of all distinct blobs the tags reference, each counted once."""
        sizes: dict[str, int] = {}
        for repo in self.repositories:
            for tag in repo.tags:
                sizes.update(tag.blob_sizes)
        return sum(sizes.values())


def list_registry(
    layout: Layout,
    location: str,
    repository: str | None = None,
    jobs: int = DEFAULT_JOBS,
    *,
    scanned: Repositories | None = None,
    reader: ManifestReader | None = None,
    facts: ManifestFacts | None = None,
) -> Listing:
    """List every repository (or one) with its tags. `NotFound` for an unknown repository.
    V2 manifests are read through `facts` where given (`regtool.facts`).

    V2 only, for callers that list often (the web UI): `scanned` lists the repositories
    of this walk (`V2Layout.scan_repositories`) instead of walking again, and `reader`
    reads manifests through a reader kept between listings (manifests never change)."""
    listing = Listing(location, layout.kind)
    if isinstance(layout, V2Layout):
        _list_v2(layout, listing, repository, jobs, scanned, reader, facts)
    else:
        _list_v1(layout, listing, repository, jobs)
    if repository is not None and not listing.repositories:
        raise NotFound(f"repository {repository} not found in {location}")
    return listing


def _list_v2(
    layout: V2Layout,
    listing: Listing,
    repository: str | None,
    jobs: int,
    scanned: Repositories | None,
    reader: ManifestReader | None,
    facts: ManifestFacts | None,
) -> None:
    if repository is not None:
        check_name(repository)
    reader = reader or ManifestReader(layout, jobs, facts)
    if scanned is not None:
        repos = scanned
    else:
        repos = reader.beside_blob_listing(
            lambda: layout.scan_repositories(repository, layers=False, uploads=False)
        )
    listing.warnings += repos.skipped_warnings()
    digests: dict[tuple[str, str], Digest | Exception] = {}
    unread: list[tuple[str, str]] = []
    for name, repo in repos.items():
        for tag in repo.tags:
            known = repo.listed_tag_digest(tag)
            if known is None:
                unread.append((name, tag))
            else:
                digests[(name, tag)] = known
    for name, tag in unread:
        if repos[name].tags[tag].checksum is not None:  # a listing that should have told
            log.debug("%s:%s: no digest has its current link's MD5; reading the link", name, tag)
    listing.tag_links_read = len(unread)
    read = layout.tag_digests(unread, jobs)
    raise_faults(read.values())
    digests.update(read)
    reader.expect(d for repo in repos.values() for d in repo.revisions)
    reader.fetch(d for d in digests.values() if isinstance(d, Digest))
    roots = {d for d in digests.values() if isinstance(d, Digest)}
    schema1_sizes = _schema1_blob_sizes(layout, reader, roots, jobs)

    for name in sorted(repos):
        info = RepositoryInfo(name)
        for tag in sorted(repos[name].tags):
            entry = repos[name].tags[tag]
            tag_info = TagInfo(tag, pushed=entry.modified)
            info.tags.append(tag_info)
            digest = digests[(name, tag)]
            if isinstance(digest, Exception):
                listing.warnings.append(f"{name}:{tag}: {_reason(digest)}")
                continue
            tag_info.digest = str(digest)
            try:
                _describe_manifest(tag_info, digest, reader, schema1_sizes)
            except RegtoolError as e:
                if is_fault(e):
                    raise
                listing.warnings.append(f"{name}:{tag}: {e}")
        listing.repositories.append(info)


def _describe_manifest(
    info: TagInfo, digest: Digest, reader: ManifestReader, schema1_sizes: dict[Digest, int]
) -> None:
    manifest = reader.get(digest)
    info.media_type = manifest.media_type
    info.kind = manifest.kind
    blobs: dict[str, int] = {}
    if manifest.is_index:
        info.platforms = [str(c.platform) for c in manifest.manifests if c.platform]
        for child in _image_children(manifest, reader):
            blobs.update(_blob_sizes(child.blobs, schema1_sizes))
    else:
        blobs = _blob_sizes(manifest.blobs, schema1_sizes)
    info.blob_sizes = blobs
    info.size = sum(blobs.values())


def _image_children(index: Manifest, reader: ManifestReader) -> Iterable[Manifest]:
    """Every image below an index, through nested indexes, each once."""
    seen: set[Digest] = set()
    stack = list(index.manifests)
    while stack:
        child = stack.pop()
        if child.digest in seen:
            continue
        seen.add(child.digest)
        manifest = reader.get(child.digest)
        if manifest.is_index:
            stack.extend(manifest.manifests)
        else:
            yield manifest


def _blob_sizes(blobs: Iterable[Descriptor], schema1_sizes: dict[Digest, int]) -> dict[str, int]:
    return {
        str(d.digest): d.size if d.size is not None else schema1_sizes.get(d.digest, 0)
        for d in blobs
    }


def _schema1_blob_sizes(
    layout: V2Layout, reader: ManifestReader, roots: set[Digest], jobs: int
) -> dict[Digest, int]:
    """Schema 1 manifests carry no sizes: stat their blobs (rare, old data only), for the
    manifests this listing reaches from `roots` (a reader kept between listings holds
    others too)."""
    unsized = {d.digest for m in _reached(reader, roots) for d in m.layers if d.size is None}
    stats = map_outcomes(lambda d: layout.driver.stat(layout.blob_data(d)).size or 0, unsized, jobs)
    raise_faults(stats.values())
    return {d: s for d, s in stats.items() if isinstance(s, int)}


def _reached(reader: ManifestReader, roots: Iterable[Digest]) -> Iterable[Manifest]:
    """The fetched manifests `roots` name and, through indexes, reach; each once."""
    seen: set[Digest] = set()
    stack = list(roots)
    while stack:
        digest = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        manifest = reader.cache.get(digest)
        if isinstance(manifest, Manifest):
            yield manifest
            stack.extend(child.digest for child in manifest.manifests)


def _list_v1(layout: V1Layout, listing: Listing, repository: str | None, jobs: int) -> None:
    name_filter = canonical_name(repository) if repository else None
    repos = layout.scan_repositories(name_filter)
    images = layout.scan_images()
    links = [(name, tag) for name, repo in repos.items() for tag in repo.tags]
    image_ids = map_outcomes(lambda nt: layout.tag_image_id(*nt), links, jobs)
    raise_faults(image_ids.values())
    ancestries = map_outcomes(
        layout.ancestry, (i for i in image_ids.values() if isinstance(i, str)), jobs
    )
    raise_faults(ancestries.values())
    layer_sizes = _v1_layer_sizes(layout, images, ancestries.values(), jobs)
    for name in sorted(repos):
        info = RepositoryInfo(name)
        for tag in sorted(repos[name].tags):
            tag_info = TagInfo(
                tag,
                pushed=repos[name].tags[tag].modified,
                media_type=V1_MEDIA_TYPE,
                kind="v1 image",
            )
            info.tags.append(tag_info)
            image_id = image_ids[(name, tag)]
            if isinstance(image_id, Exception):
                listing.warnings.append(f"{name}:{tag}: {_reason(image_id)}")
                continue
            tag_info.image_id = image_id
            ancestry = ancestries[image_id]
            if isinstance(ancestry, Exception):
                listing.warnings.append(f"{name}:{tag}: image {image_id}: {_reason(ancestry)}")
                ancestry = [image_id]
            missing = [i for i in ancestry if i not in images or not images[i].has_layer]
            if missing:
                count = plural(len(missing), "image")
                have = "has" if len(missing) == 1 else "have"
                listing.warnings.append(
                    f"{name}:{tag}: {count} of its ancestry {have} no layer, first {missing[0]}"
                )
            tag_info.blob_sizes = {i: layer_sizes.get(i, 0) for i in ancestry if i in images}
            tag_info.size = sum(tag_info.blob_sizes.values())
        listing.repositories.append(info)


def _v1_layer_sizes(
    layout: V1Layout,
    images: dict[str, V1Image],
    ancestries: Iterable[list[str] | Exception],
    jobs: int,
) -> dict[str, int]:
    """Layer sizes from the listing; layers it lists without a size are stat'ed."""
    wanted = {i for a in ancestries if isinstance(a, list) for i in a if i in images}
    sizes = {i: s for i in wanted if (s := images[i].layer_size) is not None}
    unsized = [i for i in wanted if i not in sizes and images[i].has_layer]
    stats = map_outcomes(
        lambda i: layout.driver.stat(layout.image_file(i, "layer")).size, unsized, jobs
    )
    raise_faults(stats.values())
    sizes.update({i: s for i, s in stats.items() if isinstance(s, int)})
    return sizes


def _reason(error: Exception) -> str:
    if isinstance(error, RegtoolError):
        return str(error)
    return f"{type(error).__name__}: {error}"
