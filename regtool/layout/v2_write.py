"""Writing distribution's V2 layout, and the listings a registry server needs.

Every path comes from `V2Layout` (see the tree in `layout/v2.py`); this module adds the
write side: link files hold exactly `<alg>:<hex>` (`v2.link_content`), `startedat` an
RFC 3339 UTC time, neither with a newline, as distribution writes them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from regtool.layout.v2 import CANONICAL_ALGORITHM, RepositoryIndex, V2Layout, link_content
from regtool.oci import ALGORITHMS, Digest, check_tag


def revisions_dir(layout: V2Layout, name: str, algorithm: str = CANONICAL_ALGORITHM) -> str:
    """`V2Layout.revisions_dir`, kept importable here for the server."""
    return layout.revisions_dir(name, algorithm)


def uploads_dir(layout: V2Layout, name: str) -> str:
    """`V2Layout.uploads_dir`, kept importable here for the server."""
    return layout.uploads_dir(name)


def manifests_dir(layout: V2Layout, name: str) -> str:
    """`V2Layout.manifests_dir`, kept importable here for the server."""
    return layout.manifests_dir(name)


def write_link(layout: V2Layout, path: str, digest: Digest) -> None:
    layout.driver.put(path, link_content(digest))


def stored_blob_size(layout: V2Layout, digest: Digest) -> int | None:
    """The size of the blob's data in storage (a Swift DLO: the sum of its segments);
    None when absent. A directory where the data should be is absent too, as
    distribution's blob statter takes it (a corrupt store, not a blob of 0 bytes).

    A write never trusts a blob by its presence alone: one whose size differs from what
    is being stored (a copy cut short by a crash, say) is replaced."""
    try:
        entry = layout.driver.stat(layout.blob_data(digest))
    except FileNotFoundError:
        return None
    return None if entry.is_dir else entry.size or 0


def store_uploaded_blob(
    layout: V2Layout, name: str, upload_id: str, digest: Digest, size: int
) -> None:
    """Turn the committed upload `upload_id` of repository `name`, whose `size` bytes
    hash to `digest`, into the blob, as distribution's `blobWriter.Commit` does: its data
    moves to `blobs/` unless a blob of that size is already there (one of another size is
    a copy cut short, and is replaced), then the upload is deleted. Linking it into a
    repository is `write_link`'s, once whatever needs the blob is whole."""
    if stored_blob_size(layout, digest) != size:
        layout.driver.move(layout.upload_data(name, upload_id), layout.blob_data(digest))
    layout.driver.delete(layout.upload_dir(name, upload_id))


def store_blob(layout: V2Layout, data: bytes, digest: Digest) -> None:
    """Store small content (a manifest, a config) as the blob `digest`, unless the same
    bytes are already there."""
    if stored_blob_size(layout, digest) != len(data):
        layout.driver.put(layout.blob_data(digest), data)


def write_tag(layout: V2Layout, name: str, tag: str, digest: Digest) -> None:
    """Point `tag` at the manifest `digest` in the order distribution writes: the tag's
    `index/` link, then `current/link`."""
    write_link(layout, layout.tag_index_link(name, tag, digest), digest)
    write_link(layout, layout.tag_current_link(name, tag), digest)


def write_started_at(layout: V2Layout, name: str, upload_id: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    layout.driver.put(layout.upload_started_at(name, upload_id), stamp.encode("ascii"))


def list_tags(layout: V2Layout, name: str) -> list[str]:
    """Tag names of a repository (directories under `_manifests/tags/`), sorted;
    `PathNotFound` when the repository has no tags directory."""
    entries = layout.driver.list(layout.tags_dir(name))
    return sorted(e.name for e in entries if e.is_dir and _is_tag(e.name))


def list_revisions(layout: V2Layout, name: str) -> list[Digest]:
    """Manifest digests linked into a repository, of every algorithm (distribution stores
    sha256 only; regtool also accepts sha512), sorted."""
    out = []
    for algorithm in ALGORITHMS:
        try:
            entries = layout.driver.list(layout.revisions_dir(name, algorithm))
        except FileNotFoundError:
            continue
        for e in entries:
            try:
                out.append(Digest.parse(f"{algorithm}:{e.name}"))
            except ValueError:
                continue
    return sorted(out)


def scan_revisions(layout: V2Layout, name: str) -> RepositoryIndex:
    """A repository's revision links, of every algorithm, from one walk: which there are
    and what the listing tells of each (`RepositoryIndex.listed_link_names`)."""
    walk = layout.driver.walk(layout.revisions_root(name))
    repos = layout.index_entries(walk, only=name, include_all=True)
    return repos.get(name) or RepositoryIndex(name)


def list_repositories(layout: V2Layout) -> list[str]:
    """Every repository name (a directory with `_manifests`), sorted, from one walk."""
    return sorted(layout.scan_repositories())


def _is_tag(text: str) -> bool:
    try:
        check_tag(text)
    except ValueError:
        return False
    return True
