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

Each kind of path has one method that builds it and one function that reads it back
(`blob_digest`, `parse_repository_path`), as distribution's `paths.go` has `pathFor` and
`digestFromPath`.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Literal

from regtool.errors import LayoutError, ManifestInvalid, NameInvalid, NotFound
from regtool.oci import Digest, check_name
from regtool.storage.base import Driver, Entry, Prune, join
from regtool.text import plural

FILESYSTEM_ROOT = "docker/registry/v2"
SWIFT_ROOT = "files/docker/registry/v2"
SWIFT_SEGMENTS = "segments"

#: The algorithm distribution stores blobs under. A link at another algorithm's path may
#: hold the canonical digest instead of its own: for a blob pushed by a sha512 digest,
#: distribution's `blobWriter.Commit` stores the data under its sha256 digest and
#: `linkBlob` links both digests to it (the sha512 link is an alias), and
#: `linkedBlobStatter.Stat` follows the link to the data (`V2Layout.resolve_blob`).
CANONICAL_ALGORITHM = "sha256"

#: The two kinds of link that say a repository holds a blob.
LinkKind = Literal["layer", "revision"]


class CorruptLink(LayoutError):
    """A link file that does not hold a digest."""


# --- link files ---------------------------------------------------------------------------
def link_content(digest: Digest) -> bytes:
    """The exact bytes of a link file naming `digest`: `sha256:<hex>`, no newline."""
    return str(digest).encode("ascii")


def link_checksum(digest: Digest) -> str:
    """The hex MD5 of `link_content(digest)`: what a Swift listing shows for a right link."""
    return hashlib.md5(link_content(digest), usedforsecurity=False).hexdigest()


def parse_link(data: bytes, path: str) -> Digest:
    """The digest a link file holds; `CorruptLink` (naming `path`) if it holds none."""
    try:
        return Digest.parse(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise CorruptLink(f"link {path} does not hold a digest: {data[:80]!r}") from None


def linked_data(digest: Digest, held: Digest) -> Digest | None:
    """The digest whose data (`V2Layout.blob_data`) holds blob `digest`, for a repository
    link at `digest`'s path that holds `held`, as distribution reads it
    (`linkedBlobStatter.Stat`, registry/storage/linkedblobstore.go): `digest` itself when
    the link names it; for a link at another algorithm's path, the canonical digest it
    holds (an alias, see `CANONICAL_ALGORITHM`); None when the link names another blob."""
    if held == digest:
        return digest
    if digest.algorithm != CANONICAL_ALGORITHM and held.algorithm == CANONICAL_ALGORITHM:
        return held
    return None


def listed_link_names(entry: Entry, digest: Digest) -> bool | None:
    """What a listing alone tells of a link at `digest`'s path: True if it certainly names
    the blob, False if it certainly does not, None if only reading it can tell.

    A Swift listing gives each object's MD5, so it tells every case. Local and SFTP
    listings give only the size: one other than the digest's length (an empty or truncated
    link) is wrong, the right length must be read."""
    expected = link_content(digest)
    if entry.checksum is not None:
        if entry.checksum == link_checksum(digest):
            return True
    elif entry.size is None or entry.size == len(expected):
        return None
    # not exactly its own digest: wrong, unless it may be an alias to the canonical digest
    return None if digest.algorithm != CANONICAL_ALGORITHM else False


def describe_link_content(data: bytes) -> str:
    """What a link file holds, in words, for reports: `nothing (0 bytes)`, `sha256:ab12…`
    or the start of whatever else it holds."""
    if not data:
        return "nothing (0 bytes)"
    try:
        target = Digest.parse(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return f"{plural(len(data), 'byte')} that are not a digest: {data[:40]!r}"
    return f"{target.algorithm}:{target.hex[:12]}…, another blob"


# --- what a listing tells -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LinkStat:
    """What a listing tells of a link file (without its path: a registry has millions)."""

    size: int | None
    modified: datetime | None
    checksum: str | None = None  # hex MD5, where the listing gives it (Swift)


@dataclass(frozen=True, slots=True)
class RepositoryPath:
    """What a path below `repositories/` is: the inverse of the `V2Layout` path methods.

    `kind` is `layer-link`, `revision-link`, `tag-current`, `tag-index` or `upload`; an
    upload's `upload_file` is `data`, `startedat`, `hashstates/<alg>/<offset>` or any
    other file in its directory (a lease, a writer's temp file)."""

    name: str
    kind: str
    digest: Digest | None = None
    tag: str | None = None
    upload_id: str | None = None
    upload_file: str | None = None


@dataclass
class RepositoryIndex:
    """What one listing of a repository's directory tells, without reading any file.

    `layers` and `revisions` hold every link by its path, whatever it holds: what a link
    could keep is kept (gc). `bad_links` are those the listing shows do not name the digest
    of their path (empty, truncated or, on Swift, any other content): distribution cannot
    serve that blob in this repository. Where the listing gives no checksum (local, SFTP)
    a link of the right length may still name another digest: `unconfirmed_links`."""

    name: str
    tags: dict[str, LinkStat] = field(default_factory=dict)  # tag -> its current/link
    revisions: set[Digest] = field(default_factory=set)
    layers: set[Digest] = field(default_factory=set)
    uploads: dict[str, list[Entry]] = field(default_factory=dict)  # uuid -> its files
    # tag -> every digest it has pointed at (lists: most hold one, and a set costs 4x)
    tag_history: dict[str, list[Digest]] = field(default_factory=dict)
    has_manifests: bool = False
    bad_links: dict[tuple[LinkKind, Digest], LinkStat] = field(default_factory=dict)
    unconfirmed_links: bool = False

    def links(self, kind: LinkKind) -> set[Digest]:
        return self.layers if kind == "layer" else self.revisions

    def listed_link_names(self, kind: LinkKind, digest: Digest) -> bool | None:
        """Whether the repository's link of `kind` to `digest` names it, as far as the
        listing tells: False also when there is no such link, None when it must be read."""
        if digest not in self.links(kind) or (kind, digest) in self.bad_links:
            return False
        return None if self.unconfirmed_links else True

    def listed_tag_digest(self, tag: str) -> Digest | None:
        """The tag's digest as the listing alone tells it, or None if its link must be read.

        With a checksum (Swift) this is certain: the digest of the tag's history (or,
        failing that, of the repository's revisions) whose link content has the current
        link's MD5; None when none has (damaged or foreign data). Without one (local,
        SFTP) it is an inference: distribution (and regtool) write
        `tags/<tag>/index/<digest>/link` before `current/link`, so a tag whose history
        holds one digest, and whose current link has exactly that digest's length, is
        taken to point at it; a current link of that length naming another digest is not
        noticed (good enough to show, never to delete on: `certain_tag_digest`). A
        re-pointed tag (two or more history entries), an unknown size or any other
        length means: read the link."""
        history = self.tag_history.get(tag, [])
        current = self.tags.get(tag)
        if current is None:
            return None
        if current.checksum is not None:
            return next(
                (d for d in (*history, *self.revisions) if link_checksum(d) == current.checksum),
                None,
            )
        if len(history) != 1:
            return None
        (digest,) = history
        return digest if current.size == len(link_content(digest)) else None

    def certain_tag_digest(self, tag: str) -> Digest | None:
        """The tag's digest where the listing tells it for certain (a checksum, as Swift
        lists), else None: its link must be read. What deletes on a tag's word (gc) uses
        this; `listed_tag_digest` may infer."""
        current = self.tags.get(tag)
        if current is None or current.checksum is None:
            return None
        return self.listed_tag_digest(tag)

    def compact(self) -> None:
        """Refit the sets once complete: grown one `add` at a time, a set's table can be
        four times what a copy needs (for a million links, tens of megabytes)."""
        self.revisions = set(self.revisions)
        self.layers = set(self.layers)


class Repositories(dict[str, RepositoryIndex]):
    """Repositories by name, from one walk; `skipped` holds, by their path below
    `repositories/`, the directories whose path is not a repository name (capitals, a
    name that is not UTF-8, `check_name`): distribution cannot serve them, so no tool
    treats them as repositories. A name that is not UTF-8 holds surrogates: show it with
    `skipped_warning`."""

    def __init__(
        self,
        found: dict[str, RepositoryIndex] | None = None,
        skipped: dict[str, RepositoryIndex] | None = None,
    ):
        super().__init__(found or {})
        self.skipped: dict[str, RepositoryIndex] = skipped or {}

    def skipped_warnings(self, what_happens: str = "skipped") -> list[str]:
        """One warning per skipped directory, naming it (escaped) and saying why."""
        return [
            f"directory {name!r} in repositories/: not a valid repository name, no registry "
            f"serves it; {what_happens}"
            for name in sorted(self.skipped)
        ]


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

    def blob_digest(self, path: str) -> Digest | None:
        """The inverse of `blob_data`: the digest whose data is at `path`, or None for any
        other path (a file that is not `<alg>/<2 hex>/<hex>/data` with a valid digest)."""
        base = self.blobs_dir() + "/"
        if not path.startswith(base):
            return None
        parts = path[len(base) :].split("/")
        if len(parts) != 4 or parts[3] != "data" or parts[2][:2] != parts[1]:
            return None
        return _digest_from(parts[0], parts[2])

    def segments_dir(self) -> str | None:
        """Where distribution's Swift driver keeps large-object segments (`segments/`
        beside `files/`); None with filesystem naming."""
        if not self.swift_naming:
            return None
        return join(self.root[: -len(SWIFT_ROOT)], SWIFT_SEGMENTS)

    def repositories_dir(self) -> str:
        return join(self.root, "repositories")

    @functools.cached_property
    def _repositories_base(self) -> str:
        """`repositories_dir()/`, built once: every walked path is tested against it."""
        return self.repositories_dir() + "/"

    def repository_dir(self, name: str) -> str:
        return join(self.root, "repositories", check_name(name))

    def layers_dir(self, name: str) -> str:
        return join(self.repository_dir(name), "_layers")

    def layer_link(self, name: str, digest: Digest) -> str:
        return join(self.layers_dir(name), digest.algorithm, digest.hex, "link")

    def manifests_dir(self, name: str) -> str:
        return join(self.repository_dir(name), "_manifests")

    def revisions_root(self, name: str) -> str:
        """`_manifests/revisions`: the revision links of every algorithm below it."""
        return join(self.manifests_dir(name), "revisions")

    def revisions_dir(self, name: str, algorithm: str = CANONICAL_ALGORITHM) -> str:
        return join(self.manifests_dir(name), "revisions", algorithm)

    def revision_link(self, name: str, digest: Digest) -> str:
        return join(self.revisions_dir(name, digest.algorithm), digest.hex, "link")

    def link(self, kind: LinkKind, name: str, digest: Digest) -> str:
        """The `_layers` or revision link of `digest` in repository `name`."""
        if kind == "layer":
            return self.layer_link(name, digest)
        return self.revision_link(name, digest)

    def tags_dir(self, name: str) -> str:
        return join(self.manifests_dir(name), "tags")

    def tag_dir(self, name: str, tag: str) -> str:
        return join(self.tags_dir(name), tag)

    def tag_current_link(self, name: str, tag: str) -> str:
        return join(self.tag_dir(name, tag), "current/link")

    def tag_index_link(self, name: str, tag: str, digest: Digest) -> str:
        return join(self.tag_dir(name, tag), "index", digest.algorithm, digest.hex, "link")

    def uploads_dir(self, name: str) -> str:
        return join(self.repository_dir(name), "_uploads")

    def upload_dir(self, name: str, upload_id: str) -> str:
        return join(self.uploads_dir(name), upload_id)

    def upload_data(self, name: str, upload_id: str) -> str:
        return join(self.upload_dir(name, upload_id), "data")

    def upload_started_at(self, name: str, upload_id: str) -> str:
        return join(self.upload_dir(name, upload_id), "startedat")

    def upload_lease(self, name: str, upload_id: str, generation: int = 0) -> str:
        """The lease of the request appending to an upload (regtool's; distribution
        ignores it): `lease`, then `lease.1`, `lease.2`... for each takeover of an
        expired one (see `uploads/lease.py`)."""
        suffix = f".{generation}" if generation else ""
        return join(self.upload_dir(name, upload_id), f"lease{suffix}")

    def split_repository_path(self, path: str) -> tuple[str, list[str]] | None:
        """(repository name, the components from its first `_` one) of a path below
        `repositories/`, e.g. ("a/b", ["_layers", "sha256", "<hex>", "link"]); None for a
        path elsewhere or without a `_` component."""
        base = self._repositories_base
        if not path.startswith(base):
            return None
        # the first "/_" from the slash before the first component starts the `_` one
        cut = path.find("/_", len(base) - 1)
        if cut < len(base):  # none, or the first component itself
            return None
        return path[len(base) : cut], path[cut + 1 :].split("/")

    def parse_repository_path(self, path: str) -> RepositoryPath | None:
        """The inverse of the repository path methods (`layer_link`, `revision_link`,
        `tag_current_link`, `tag_index_link`, `upload_data`, ...); None for a path of no
        known shape."""
        split = self.split_repository_path(path)
        if split is None:
            return None
        name, rest = split
        shape = _shape(rest)
        if shape is None:
            return None
        kind, key, digest = shape
        if kind == "upload":
            return RepositoryPath(name, kind, upload_id=key, upload_file="/".join(rest[2:]))
        return RepositoryPath(name, kind, digest=digest, tag=key)

    # --- reading ---------------------------------------------------------------------
    def read_link(self, path: str) -> Digest:
        """The digest the link at `path` holds: `PathNotFound`, `CorruptLink`."""
        return parse_link(self.driver.get(path), path)

    def tag_digest(self, name: str, tag: str) -> Digest:
        try:
            return self.read_link(self.tag_current_link(name, tag))
        except FileNotFoundError:
            raise NotFound(f"tag {name}:{tag} not found") from None

    def tag_digests(
        self, tags: Iterable[tuple[str, str]], jobs: int
    ) -> dict[tuple[str, str], Digest | Exception]:
        """What `tag_digest` gives for each (repository, tag), the links read together
        (`Driver.get_many`): the digest, or the error (`NotFound`, `CorruptLink`, a
        storage fault)."""
        paths = {self.tag_current_link(name, tag): (name, tag) for name, tag in tags}
        found: dict[tuple[str, str], Digest | Exception] = {}
        for path, data in self.driver.get_many(paths, jobs).items():
            name, tag = paths[path]
            if isinstance(data, FileNotFoundError):
                found[(name, tag)] = NotFound(f"tag {name}:{tag} not found")
            elif isinstance(data, Exception):
                found[(name, tag)] = data
            else:
                try:
                    found[(name, tag)] = parse_link(data, path)
                except CorruptLink as e:
                    found[(name, tag)] = e
        return found

    def read_blob(self, digest: Digest) -> bytes:
        return self.driver.get(self.blob_data(digest))

    def open_blob(self, digest: Digest, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self.driver.open(self.blob_data(digest), offset, length)

    def resolve_blob(self, name: str, digest: Digest) -> Digest:
        """The digest whose data holds blob `digest` as repository `name` links it:
        `digest` itself for the canonical algorithm, without a request; for another
        algorithm, what its `_layers` link holds (`linked_data`). distribution stores a
        blob pushed as `sha512:<hex>` under its sha256 digest and links the sha512 digest
        to that; regtool stores it under its own digest. Reads one link for a
        non-canonical digest: `PathNotFound` when the repository has none, `CorruptLink`
        when it names no digest or another blob."""
        if digest.algorithm == CANONICAL_ALGORITHM:
            return digest
        path = self.layer_link(name, digest)
        target = linked_data(digest, self.read_link(path))
        if target is None:
            raise CorruptLink(f"link {path} names another blob, not {digest}")
        return target

    def read_manifest_bytes(self, digest: Digest) -> bytes:
        try:
            return self.read_blob(digest)
        except FileNotFoundError:
            raise ManifestInvalid(f"manifest {digest} is missing from blob storage") from None

    def read_manifests_bytes(
        self, digests: Iterable[Digest], jobs: int
    ) -> dict[Digest, bytes | Exception]:
        """What `read_manifest_bytes` gives for each digest, the blobs read together
        (`Driver.get_many`): the bytes, or the error (`ManifestInvalid` for a missing
        blob, a storage fault)."""
        paths = {self.blob_data(d): d for d in digests}
        found: dict[Digest, bytes | Exception] = {}
        for path, data in self.driver.get_many(paths, jobs).items():
            digest = paths[path]
            if isinstance(data, FileNotFoundError):
                data = ManifestInvalid(f"manifest {digest} is missing from blob storage")
            found[digest] = data
        return found

    def scan_repositories(
        self, name: str | None = None, *, layers: bool = True, uploads: bool = True
    ) -> Repositories:
        """Every repository (or just `name`) from one walk of the repositories tree;
        directories of an invalid name in `skipped`. `layers` and `uploads` as for
        `index_entries`: what is left out is not walked either (`prune_parts`)."""
        top = self.repositories_dir() if name is None else self.repository_dir(name)
        walk = self.driver.walk(top, prune=self.prune_parts(layers=layers, uploads=uploads))
        return self.index_entries(walk, only=name, layers=layers, uploads=uploads)

    def prune_parts(self, *, layers: bool = True, uploads: bool = True) -> Prune | None:
        """A walk's prune hint (`Driver.walk`) that passes over every repository's
        `_layers` (unless `layers`) and `_uploads` (unless `uploads`) directory; None
        when both are wanted. A tag of such a name (`_manifests/tags/_layers`) is kept:
        only a repository's own `_` directories are passed over."""
        pruned = _left_out(layers, uploads)
        if not pruned:
            return None

        def prune(directory: str) -> bool:
            split = self.split_repository_path(directory)
            return split is not None and len(split[1]) == 1 and split[1][0] in pruned

        return prune

    def iter_repository_names(self) -> Iterator[str]:
        """Every repository's name (a directory holding `_manifests`, of a valid name),
        depth first, each directory's entries in name order, a repository before those
        below it: the order of the names' components (`a/b` before `a-b`). One listing
        of a directory at a time, never below a repository's `_` directories, so the
        first names come after a few listings whatever the size of the store (where
        `scan_repositories` lists every link file first). A storage fault is raised."""
        top = self.repositories_dir()
        base = top + "/"

        def below(directory: str) -> Iterator[str]:
            try:
                children = self.driver.list(directory)
            except FileNotFoundError:  # deleted since its parent was listed
                return
            if directory != top and any(c.is_dir and c.name == "_manifests" for c in children):
                name = directory[len(base) :]
                if _valid_name(name):
                    yield name
            subdirectories = (c for c in children if c.is_dir and not c.name.startswith("_"))
            for child in sorted(subdirectories, key=lambda c: c.name):
                yield from below(child.path)

        return below(top)

    def index_entries(
        self,
        entries: Iterable[Entry],
        only: str | None = None,
        include_all: bool = False,
        *,
        layers: bool = True,
        uploads: bool = True,
    ) -> Repositories:
        """Sort walked entries under `repositories/` into per-repository indexes.

        A directory is a repository only if it has `_manifests` (distribution ignores the
        rest too); `include_all` keeps the others as well, e.g. an abandoned first push
        with only `_uploads` and `_layers`. One whose path is not a valid repository name
        goes to `Repositories.skipped` instead. Files that fit no known shape are
        ignored. With `layers` False the `_layers` links are passed over (`layers` and
        their `bad_links` stay empty): what lists tags needs none, and they are most of
        a registry's links. With `uploads` False the files of `_uploads` are passed over
        (`uploads` stays empty)."""
        left_out = _left_out(layers, uploads)
        repos: dict[str, RepositoryIndex] = {}
        for entry in entries:
            split = self.split_repository_path(entry.path)
            if split is None or (only is not None and split[0] != only):
                continue
            repo_name, rest = split
            if rest[0] in left_out:
                continue
            _classify(repos.setdefault(repo_name, RepositoryIndex(repo_name)), rest, entry)
        found = Repositories()
        for repo_name, repo in repos.items():
            if not (include_all or repo.has_manifests):
                continue
            repo.compact()
            if _valid_name(repo_name):
                found[repo_name] = repo
            else:
                found.skipped[repo_name] = repo
        return found


def _left_out(layers: bool, uploads: bool) -> frozenset[str]:
    """A repository's `_` directories a scan leaves out."""
    return frozenset(n for n, wanted in (("_layers", layers), ("_uploads", uploads)) if not wanted)


def _valid_name(name: str) -> bool:
    try:
        check_name(name)
    except NameInvalid:
        return False
    return True


def _digest_from(alg: str, hexpart: str) -> Digest | None:
    try:
        return Digest.parse(f"{alg}:{hexpart}")
    except ValueError:
        return None


def _shape(rest: list[str]) -> tuple[str, str | None, Digest | None] | None:
    """(kind, tag or upload id, digest) of the components of a repository path from its
    first `_` one; None for no known shape (or an invalid digest in the path)."""
    match rest:
        case ["_manifests", "tags", tag, "current", "link"]:
            return "tag-current", tag, None
        case ["_manifests", "tags", tag, "index", alg, hexpart, "link"]:
            d = _digest_from(alg, hexpart)
            return ("tag-index", tag, d) if d else None
        case ["_manifests", "revisions", alg, hexpart, "link"]:
            d = _digest_from(alg, hexpart)
            return ("revision-link", None, d) if d else None
        case ["_layers", alg, hexpart, "link"]:
            d = _digest_from(alg, hexpart)
            return ("layer-link", None, d) if d else None
        case ["_uploads", upload_id, _, *_]:
            # any file in an upload's directory is the upload's: data, startedat,
            # hashstates/<alg>/<offset>, a lease, a writer's temp file
            return "upload", upload_id, None
    return None


def _classify(repo: RepositoryIndex, rest: list[str], entry: Entry) -> None:
    """Record one file below `repositories/<name>/` by its shape (`rest` starts at `_x`)."""
    repo.has_manifests = repo.has_manifests or rest[0] == "_manifests"
    if rest[0] == "_uploads" and len(rest) >= 2:  # every file of an upload, known or not
        repo.uploads.setdefault(rest[1], []).append(entry)
        return
    shape = _shape(rest)
    if shape is None:
        return
    kind, key, d = shape
    if kind == "tag-current":
        assert key is not None
        repo.tags[sys.intern(key)] = LinkStat(entry.size, entry.modified, entry.checksum)
    elif kind == "tag-index":
        assert key is not None and d is not None
        if (history := repo.tag_history.get(key)) is None:
            repo.tag_history[sys.intern(key)] = [d]  # one slot, not append's four
        else:
            history.append(d)
    elif kind in ("revision-link", "layer-link"):
        assert d is not None
        link_kind: LinkKind = "layer" if kind == "layer-link" else "revision"
        repo.links(link_kind).add(d)
        verdict = listed_link_names(entry, d)
        if verdict is False:
            repo.bad_links[(link_kind, d)] = LinkStat(entry.size, entry.modified, entry.checksum)
        elif verdict is None:
            repo.unconfirmed_links = True
