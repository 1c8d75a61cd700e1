"""The registry's storage operations over a `V2Layout`: blocking, no HTTP.

Every method is called from a worker thread. Write orders follow distribution, so a crash
between two steps leaves what distribution would leave: a manifest is stored as a blob
first, then its revision link, then the tag's `index/` link, then `current/link`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from regtool.concurrency import map_outcomes
from regtool.errors import ManifestInvalid, is_fault
from regtool.facts import ManifestFacts, open_cache
from regtool.layout import v2_write
from regtool.layout.manifests import ManifestReader, store_identity
from regtool.layout.v2 import CorruptLink, V2Layout, linked_data
from regtool.layout.v2_write import stored_blob_size
from regtool.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_TYPES,
    Digest,
    JsonInvalid,
    Manifest,
    detect_media_type,
    load_json,
    parse_manifest,
)
from regtool.server.errors import (
    BlobUnknown,
    DigestMismatch,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameUnknown,
)
from regtool.server.foreign_layers import UrlPolicy, requirements
from regtool.server.pulls import PullRecorder

ACCEPTED_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST})


@dataclass(frozen=True)
class StoredManifest:
    digest: Digest
    media_type: str
    data: bytes


@dataclass(frozen=True)
class PutResult:
    digest: Digest
    subject: Digest | None


class Registry:
    """`foreign_urls`: the layer URLs a pushed manifest may list (see `foreign_layers`);
    `record_pulls`: whether pulls are recorded (`pulls`; not on a read-only server);
    `facts`: the manifest-facts cache referrers read through (default: `open_cache`)."""

    def __init__(
        self,
        layout: V2Layout,
        jobs: int = 16,
        foreign_urls: UrlPolicy | None = None,
        record_pulls: bool = True,
        facts: ManifestFacts | None = None,
    ):
        self.layout = layout
        # Manifest facts for referrers: the shared cache unless REGTOOL_CACHE is off.
        self.facts = facts if facts is not None else open_cache(store_identity(layout))
        self.driver = layout.driver
        self.jobs = jobs
        self.foreign_urls = foreign_urls or UrlPolicy()
        self.pulls = PullRecorder(layout, enabled=record_pulls)

    # --- links -----------------------------------------------------------------------
    def _links_to(self, path: str, digest: Digest) -> bool:
        """Whether the link file at `path` is there and names `digest` (or, at a sha512
        path, is distribution's alias to the sha256 digest: `linked_data`). An empty link,
        or one naming another digest, counts as absent: distribution would answer 500 for
        what it points at; regtool serves, references and re-links it as if unlinked."""
        try:
            return linked_data(digest, self.layout.read_link(path)) is not None
        except (FileNotFoundError, CorruptLink):
            return False

    def has_layer(self, name: str, digest: Digest) -> bool:
        return self._links_to(self.layout.layer_link(name, digest), digest)

    def has_revision(self, name: str, digest: Digest) -> bool:
        return self._links_to(self.layout.revision_link(name, digest), digest)

    # --- blobs -----------------------------------------------------------------------
    def blob_size(self, name: str, digest: Digest) -> int:
        """Size of a blob linked into `name` (through an alias too); `BlobUnknown`
        otherwise."""
        if not self.has_layer(name, digest):
            raise BlobUnknown(f"blob {digest} unknown to repository {name}")
        size = stored_blob_size(self.layout, self._data_of(name, digest))
        if size is None:
            raise BlobUnknown(f"blob {digest} unknown to registry")
        return size

    def open_blob(self, name: str, digest: Digest, offset: int, length: int) -> BinaryIO:
        """A reader of a blob `blob_size` found linked into `name`."""
        try:
            return self.layout.open_blob(self._data_of(name, digest), offset, length)
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} unknown to registry") from None

    def _data_of(self, name: str, digest: Digest) -> Digest:
        """The digest whose data holds `digest` in `name` (`V2Layout.resolve_blob`)."""
        try:
            return self.layout.resolve_blob(name, digest)
        except (FileNotFoundError, CorruptLink):
            raise BlobUnknown(f"blob {digest} unknown to repository {name}") from None

    def delete_blob(self, name: str, digest: Digest) -> None:
        """Unlink the blob from the repository; its data stays until GC."""
        if not self.has_layer(name, digest):
            raise BlobUnknown(f"blob {digest} unknown to repository {name}")
        try:
            self.driver.delete(self.layout.layer_link(name, digest))
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} unknown to repository {name}") from None

    def mount_blob(self, name: str, source: str, digest: Digest) -> bool:
        """Link a blob of `source` into `name`; False if `source` does not have it."""
        try:
            self.blob_size(source, digest)
            data = self._data_of(source, digest)
        except BlobUnknown:
            return False
        # An alias stays one, linked as distribution links it on upload (`linkBlob`):
        # distribution serves it through the canonical digest's link too.
        if data != digest:
            v2_write.write_link(self.layout, self.layout.layer_link(name, data), data)
        v2_write.write_link(self.layout, self.layout.layer_link(name, digest), data)
        return True

    def link_blob(self, name: str, digest: Digest) -> None:
        v2_write.write_link(self.layout, self.layout.layer_link(name, digest), digest)

    # --- manifests -------------------------------------------------------------------
    def resolve(self, name: str, reference: str | Digest) -> Digest:
        """The digest a tag points at (a digest is itself); `ManifestUnknown` for a tag
        without a readable link."""
        if isinstance(reference, Digest):
            return reference
        try:
            return self.layout.read_link(self.layout.tag_current_link(name, reference))
        except (FileNotFoundError, CorruptLink):
            raise ManifestUnknown(
                f"manifest tagged {reference} is not known", {"Tag": reference}
            ) from None

    def get_manifest(self, name: str, reference: str | Digest) -> StoredManifest:
        digest = self.resolve(name, reference)
        if not self.has_revision(name, digest):
            raise ManifestUnknown(f"manifest {digest} unknown to repository {name}")
        try:
            data = self.layout.read_blob(digest)
        except FileNotFoundError:
            raise ManifestUnknown(f"manifest {digest} unknown to registry") from None
        return StoredManifest(digest, stored_media_type(data), data)

    def put_manifest(
        self, name: str, reference: str | Digest, data: bytes, content_type: str | None
    ) -> PutResult:
        digest = Digest.of(data, reference.algorithm if isinstance(reference, Digest) else "sha256")
        if isinstance(reference, Digest) and digest != reference:
            raise DigestMismatch(f"manifest digest {digest} does not match {reference}")
        manifest = self._check_manifest(data, content_type)
        self._check_references(name, manifest)
        v2_write.store_blob(self.layout, data, digest)  # unless these bytes are there
        v2_write.write_link(self.layout, self.layout.revision_link(name, digest), digest)
        if isinstance(reference, str):
            self._tag(name, reference, digest)
        return PutResult(digest, manifest.subject.digest if manifest.subject else None)

    def _tag(self, name: str, tag: str, digest: Digest) -> None:
        v2_write.write_tag(self.layout, name, tag, digest)

    def _check_manifest(self, data: bytes, content_type: str | None) -> Manifest:
        """The manifest, if its `Content-Type` is a manifest type regtool stores and the
        body is of that type; `ManifestInvalid` otherwise. distribution 2.8 parses a body
        by its Content-Type (`mime.ParseMediaType`: parameters dropped, case ignored) and
        anything else (none, `text/plain`, `application/json`) as schema 1, which fails."""
        ctype = content_media_type(content_type)
        if ctype not in ACCEPTED_TYPES:
            # A header's bytes arrive decoded as Latin-1: ascii() shows them as sent
            # (`t\xc3\xa4g`), never as mojibake
            shown = ascii(ctype[:100]) if ctype else "(none)"
            raise ManifestInvalid(
                f"Content-Type {shown} is not a manifest type: "
                f"use one of {', '.join(sorted(ACCEPTED_TYPES))}"
            )
        manifest = parse_manifest(data)
        if manifest.media_type in SCHEMA1_TYPES:
            raise ManifestInvalid("schema 1 manifests are not accepted")
        if manifest.media_type != ctype:
            raise ManifestInvalid(
                f"the manifest is {manifest.media_type}, but Content-Type says {ctype}"
            )
        return manifest

    def _check_references(self, name: str, manifest: Manifest) -> None:
        """Every blob the manifest needs (`foreign_layers.requirements`) and, for an
        index, every child manifest must be linked into the repository, as distribution
        checks; a layer whose URLs are not allowed is refused whatever is stored."""
        needs = requirements(manifest, self.foreign_urls)
        paths: dict[str, Digest] = {self.layout.layer_link(name, d): d for d in needs.stored}
        for d in manifest.manifests:
            paths[self.layout.revision_link(name, d.digest)] = d.digest
        found = map_outcomes(lambda p: self._links_to(p, paths[p]), paths, self.jobs)
        missing = dict.fromkeys(str(paths[p]) for p, ok in found.items() if ok is not True)
        missing.update(dict.fromkeys(str(d) for d in needs.refused))
        if missing:
            reasons = "; ".join(needs.refused.values())
            raise ManifestBlobUnknown(
                f"manifest references unknown blobs: {', '.join([*missing][:5])}"
                + (f" ({reasons[:300]})" if reasons else ""),
                [{"digest": m} for m in missing],
            )

    def delete_manifest(self, name: str, digest: Digest) -> None:
        """Remove the revision link and every tag that points at the manifest."""
        if not self.has_revision(name, digest):
            raise ManifestUnknown(f"manifest {digest} unknown to repository {name}")
        try:
            self.driver.delete(self.layout.revision_link(name, digest))
        except FileNotFoundError:
            raise ManifestUnknown(f"manifest {digest} unknown to repository {name}") from None
        try:
            tags = v2_write.list_tags(self.layout, name)
        except FileNotFoundError:
            tags = []
        links = map_outcomes(
            lambda t: self.layout.read_link(self.layout.tag_current_link(name, t)), tags, self.jobs
        )
        for tag, target in links.items():
            if target == digest:
                self.delete_tag(name, tag)

    def delete_tag(self, name: str, tag: str) -> None:
        try:
            self.driver.delete(self.layout.tag_dir(name, tag))
        except FileNotFoundError:
            raise ManifestUnknown(f"tag {tag} unknown to repository {name}") from None

    # --- listings --------------------------------------------------------------------
    def tags(self, name: str) -> list[str]:
        try:
            return v2_write.list_tags(self.layout, name)
        except FileNotFoundError:
            # Deleting the last tag may take the emptied directory with it.
            if self.driver.exists(v2_write.manifests_dir(self.layout, name)):
                return []
            raise NameUnknown(f"repository {name} not known to registry", {"name": name}) from None

    def repositories(self) -> list[str]:
        """Every repository, in the order distribution's `_catalog` gives them."""
        return sorted(v2_write.list_repositories(self.layout), key=catalog_order)

    def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> dict[str, Any]:
        """An OCI index of the manifests in `name` whose `subject` is `subject`.

        One listing of the repository's revision links (on Swift their MD5s confirm
        them; elsewhere a link of the right length is read) and the manifests' facts
        through the cache (`ManifestReader`): a warm cache reads no manifest."""
        reader = ManifestReader(self.layout, self.jobs, self.facts)
        links = reader.beside_blob_listing(lambda: v2_write.scan_revisions(self.layout, name))

        def linked_manifest(digest: Digest) -> tuple[Manifest, int]:
            listed = links.listed_link_names("revision", digest)
            if listed is False or (listed is None and not self.has_revision(name, digest)):
                raise ManifestUnknown(f"manifest {digest} unknown to repository {name}")
            return reader.sized(digest)

        # what the cache answers at once (one query) needs no worker thread; the rest is read
        confirmed = [d for d in links.revisions if links.listed_link_names("revision", d)]
        read: dict[Digest, tuple[Manifest, int] | Exception] = {**reader.known(confirmed)}
        todo = [d for d in links.revisions if d not in read]
        read.update(map_outcomes(linked_manifest, todo, self.jobs))
        self.facts.flush()
        descriptors = []
        for digest, outcome in sorted(read.items()):
            if isinstance(outcome, Exception):
                if is_fault(outcome):
                    raise outcome
                continue
            manifest, size = outcome
            if manifest.subject is None or manifest.subject.digest != subject:
                continue
            kind = manifest.artifact_type or (
                manifest.config.media_type if manifest.config and not manifest.is_index else None
            )
            if artifact_type and kind != artifact_type:
                continue
            desc: dict[str, Any] = {
                "mediaType": manifest.media_type,
                "digest": str(digest),
                "size": size,
            }
            if kind:
                desc["artifactType"] = kind
            if manifest.annotations:
                desc["annotations"] = manifest.annotations
            descriptors.append(desc)
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}


def stored_media_type(data: bytes) -> str:
    """The media type to serve a stored manifest as: from its JSON (`detect_media_type`).
    Bytes that are not a JSON object (distribution stores JSON nested deeper than regtool
    can parse) are still served as stored, typed as what a manifest without `mediaType`
    is taken for: an OCI manifest."""
    try:
        doc = load_json(data)
    except JsonInvalid:
        return OCI_MANIFEST
    return detect_media_type(doc) if isinstance(doc, dict) else OCI_MANIFEST


def content_media_type(content_type: str | None) -> str:
    """The media type of a `Content-Type` value: parameters dropped, ASCII lowercased."""
    text = (content_type or "").split(";", 1)[0].strip(" \t")
    return text.lower() if text.isascii() else text


def catalog_order(name: str) -> tuple[str, ...]:
    """Sort key giving distribution's `_catalog` order, so that `last` tokens page alike
    on both servers. distribution walks `repositories/` depth first, each directory's
    entries sorted by name, and lists a repository when the walk reaches its `_layers`:
    `ns/app`, `ns/app/sub`, then `ns/app-x` (plain string order would put `ns/app-x`
    second); a sub-repository starting with a digit comes before its parent."""
    return (*name.split("/"), "_layers")


def catalog_after(name: str, last: str) -> bool:
    """Whether `name` comes after `last` in a paged `_catalog`: distribution compares
    them component by component (`lessPath`: `/` sorts before every other byte)."""
    return last.replace("/", "\x00") < name.replace("/", "\x00")
