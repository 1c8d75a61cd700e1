"""distribution's (`registry:2`) storage layout: every path regtool reads or writes in it.

The tree below `root` (`docker/registry/v2` with filesystem naming; distribution's Swift
driver stores the same tree under `files/docker/registry/v2`, its large-object segments in
`segments/` beside `files/`):

    <root>/
      blobs/<alg>/<first 2 hex>/<hex>/data                          blob content
      repositories/<name>/                                          <name> may nest: a/b/c
        _layers/<alg>/<hex>/link                                    blob linked into repo
        _manifests/revisions/<alg>/<hex>/link                       manifest in repo
        _manifests/tags/<tag>/current/link                          tag -> manifest
        _manifests/tags/<tag>/index/<alg>/<hex>/link                tag history
        _uploads/<uuid>/data                                        upload in progress
        _uploads/<uuid>/startedat                                   RFC 3339, no newline
        _uploads/<uuid>/hashstates/<alg>/<offset>                   Go hash state
        _uploads/<uuid>/lease[.<n>]                                 regtool: who appends

A link file holds exactly `<alg>:<hex>`, without a newline. Name components never start
with `_`, so the first `_`-component of a path below `repositories/` ends the name.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from regtool.errors import LayoutError, ManifestInvalid, NotFound
from regtool.oci import Digest, check_name
from regtool.storage.base import Driver, Entry, join

FILESYSTEM_ROOT = "docker/registry/v2"
SWIFT_ROOT = "files/docker/registry/v2"
SWIFT_SEGMENTS = "segments"


class CorruptLink(LayoutError):
    """A link file that does not hold a digest."""


@dataclass(frozen=True, slots=True)
class LinkStat:
    """What a listing tells of a link file (without its path: a registry has millions)."""

    size: int | None
    modified: datetime | None


@dataclass
class RepositoryIndex:
    """What one listing of a repository's directory tells, without reading any file."""

    name: str
    tags: dict[str, LinkStat] = field(default_factory=dict)  # tag -> its current/link
    revisions: set[Digest] = field(default_factory=set)
    layers: set[Digest] = field(default_factory=set)
    uploads: dict[str, list[Entry]] = field(default_factory=dict)  # uuid -> its files
    # tag -> every digest it has pointed at (lists: most hold one, and a set costs 4x)
    tag_history: dict[str, list[Digest]] = field(default_factory=dict)
    has_manifests: bool = False

    def listed_tag_digest(self, tag: str) -> Digest | None:
        """The tag's digest as the listing alone tells it, or None if its link must be read.

        distribution (and regtool) write `tags/<tag>/index/<digest>/link` before
        `current/link`, so a tag whose history holds one digest, and whose current link
        has exactly that digest's length, points at it. A re-pointed tag (two or more
        history entries), an unknown size (Swift lists 0-byte objects without one) or any
        other length means: read the link."""
        history = self.tag_history.get(tag, [])
        current = self.tags.get(tag)
        if len(history) != 1 or current is None:
            return None
        (digest,) = history
        return digest if current.size == len(str(digest)) else None

    def compact(self) -> None:
        """Refit the sets once complete: grown one `add` at a time, a set's table can be
        four times what a copy needs (for a million links, tens of megabytes)."""
        self.revisions = set(self.revisions)
        self.layers = set(self.layers)


class V2Layout:
    """distribution's layout on a driver. Paths from one method per kind of path; reading
    helpers parse link files and scan repositories with a single walk."""

    kind = "v2"

    def __init__(self, driver: Driver, root: str = FILESYSTEM_ROOT):
        self.driver = driver
        self.root = root
        self.swift_naming = root == SWIFT_ROOT or root.endswith("/" + SWIFT_ROOT)

    def __repr__(self) -> str:
        return f"V2Layout({self.driver.describe()!r}, root={self.root!r})"

    # --- paths -----------------------------------------------------------------------
    def blobs_dir(self) -> str:
        return join(self.root, "blobs")

    def blob_data(self, digest: Digest) -> str:
        return join(self.root, "blobs", digest.algorithm, digest.hex[:2], digest.hex, "data")

    def segments_dir(self) -> str | None:
        """Where distribution's Swift driver keeps large-object segments (`segments/`
        beside `files/`); None with filesystem naming."""
        if not self.swift_naming:
            return None
        return join(self.root[: -len(SWIFT_ROOT)], SWIFT_SEGMENTS)

    def repositories_dir(self) -> str:
        return join(self.root, "repositories")

    def repository_dir(self, name: str) -> str:
        return join(self.root, "repositories", check_name(name))

    def layer_link(self, name: str, digest: Digest) -> str:
        return join(self.repository_dir(name), "_layers", digest.algorithm, digest.hex, "link")

    def revision_link(self, name: str, digest: Digest) -> str:
        return join(
            self.repository_dir(name), "_manifests/revisions", digest.algorithm, digest.hex, "link"
        )

    def tags_dir(self, name: str) -> str:
        return join(self.repository_dir(name), "_manifests/tags")

    def tag_dir(self, name: str, tag: str) -> str:
        return join(self.tags_dir(name), tag)

    def tag_current_link(self, name: str, tag: str) -> str:
        return join(self.tag_dir(name, tag), "current/link")

    def tag_index_link(self, name: str, tag: str, digest: Digest) -> str:
        return join(self.tag_dir(name, tag), "index", digest.algorithm, digest.hex, "link")

    def upload_dir(self, name: str, upload_id: str) -> str:
        return join(self.repository_dir(name), "_uploads", upload_id)

    def upload_data(self, name: str, upload_id: str) -> str:
        return join(self.upload_dir(name, upload_id), "data")

    def upload_started_at(self, name: str, upload_id: str) -> str:
        return join(self.upload_dir(name, upload_id), "startedat")

    def upload_lease(self, name: str, upload_id: str, generation: int = 0) -> str:
        """The lease of the request appending to an upload (regtool's; distribution
        ignores it): `lease`, then `lease.1`, `lease.2`... for each takeover of an
        expired one (see `server/upload_lease.py`)."""
        suffix = f".{generation}" if generation else ""
        return join(self.upload_dir(name, upload_id), f"lease{suffix}")

    # --- reading ---------------------------------------------------------------------
    def read_link(self, path: str) -> Digest:
        data = self.driver.get(path)
        try:
            return Digest.parse(data.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise CorruptLink(f"link {path} does not hold a digest: {data[:80]!r}") from None

    def tag_digest(self, name: str, tag: str) -> Digest:
        try:
            return self.read_link(self.tag_current_link(name, tag))
        except FileNotFoundError:
            raise NotFound(f"tag {name}:{tag} not found") from None

    def read_blob(self, digest: Digest) -> bytes:
        return self.driver.get(self.blob_data(digest))

    def open_blob(self, digest: Digest, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self.driver.open(self.blob_data(digest), offset, length)

    def read_manifest_bytes(self, digest: Digest) -> bytes:
        try:
            return self.read_blob(digest)
        except FileNotFoundError:
            raise ManifestInvalid(f"manifest {digest} is missing from blob storage") from None

    def scan_repositories(self, name: str | None = None) -> dict[str, RepositoryIndex]:
        """Every repository (or just `name`) from one walk of the repositories tree."""
        top = self.repositories_dir() if name is None else self.repository_dir(name)
        return self.index_entries(self.driver.walk(top), only=name)

    def split_repository_path(self, path: str) -> tuple[str, list[str]] | None:
        """(repository name, the components from its first `_` one) of a path below
        `repositories/`, e.g. ("a/b", ["_layers", "sha256", "<hex>", "link"]); None for a
        path elsewhere or without a `_` component."""
        base = self.repositories_dir() + "/"
        if not path.startswith(base):
            return None
        parts = path[len(base) :].split("/")
        cut = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
        if not cut:
            return None
        return "/".join(parts[:cut]), parts[cut:]

    def index_entries(
        self, entries: Iterable[Entry], only: str | None = None, include_all: bool = False
    ) -> dict[str, RepositoryIndex]:
        """Sort walked entries under `repositories/` into per-repository indexes.

        A directory is a repository only if it has `_manifests` (distribution ignores the
        rest too); `include_all` keeps the others as well, e.g. an abandoned first push
        with only `_uploads` and `_layers`. Files that fit no known shape are ignored."""
        repos: dict[str, RepositoryIndex] = {}
        for entry in entries:
            split = self.split_repository_path(entry.path)
            if split is None or (only is not None and split[0] != only):
                continue
            repo_name, rest = split
            _classify(repos.setdefault(repo_name, RepositoryIndex(repo_name)), rest, entry)
        for repo in repos.values():
            repo.compact()
        return {n: r for n, r in repos.items() if include_all or r.has_manifests}


def _digest_from(alg: str, hexpart: str) -> Digest | None:
    try:
        return Digest.parse(f"{alg}:{hexpart}")
    except ValueError:
        return None


def _classify(repo: RepositoryIndex, rest: list[str], entry: Entry) -> None:
    """Record one file below `repositories/<name>/` by its shape (`rest` starts at `_x`)."""
    repo.has_manifests = repo.has_manifests or rest[0] == "_manifests"
    match rest:
        case ["_manifests", "tags", tag, "current", "link"]:
            repo.tags[sys.intern(tag)] = LinkStat(entry.size, entry.modified)
        case ["_manifests", "tags", tag, "index", alg, hexpart, "link"]:
            if d := _digest_from(alg, hexpart):
                if (history := repo.tag_history.get(tag)) is None:
                    repo.tag_history[sys.intern(tag)] = [d]  # one slot, not append's four
                else:
                    history.append(d)
        case ["_manifests", "revisions", alg, hexpart, "link"]:
            if d := _digest_from(alg, hexpart):
                repo.revisions.add(d)
        case ["_layers", alg, hexpart, "link"]:
            if d := _digest_from(alg, hexpart):
                repo.layers.add(d)
        case ["_uploads", upload_id, *_]:
            repo.uploads.setdefault(upload_id, []).append(entry)
        case _:
            pass
