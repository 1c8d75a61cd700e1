"""Writing distribution's V2 layout, and the listings a registry server needs.

Every path comes from `V2Layout` (see the tree in `layout/v2.py`); this module adds the
write side: link files hold exactly `<alg>:<hex>` (`v2.link_content`), `startedat` an
RFC 3339 UTC time, neither with a newline, as distribution writes them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from regtool.layout.v2 import CANONICAL_ALGORITHM, V2Layout, link_content
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


def list_repositories(layout: V2Layout) -> list[str]:
    """Every repository name (a directory with `_manifests`), sorted, from one walk."""
    return sorted(layout.scan_repositories())


def _is_tag(text: str) -> bool:
    try:
        check_tag(text)
    except ValueError:
        return False
    return True
