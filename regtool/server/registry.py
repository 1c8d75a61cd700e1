"""The registry's storage operations over a `V2Layout`: blocking, no HTTP.

Every method is called from a worker thread. Write orders follow distribution, so a crash
between two steps leaves what distribution would leave: a manifest is stored as a blob
first, then its revision link, then the tag's `index/` link, then `current/link`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, BinaryIO

from regtool.concurrency import map_outcomes
from regtool.errors import ManifestInvalid
from regtool.layout import v2_write
from regtool.layout.v2 import CorruptLink, V2Layout
from regtool.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_TYPES,
    Digest,
    Manifest,
    detect_media_type,
    parse_manifest,
)
from regtool.server.errors import (
    BlobUnknown,
    DigestMismatch,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameUnknown,
)
from regtool.server.pulls import PullRecorder

#: distribution's limit on a manifest body.
MAX_MANIFEST_SIZE = 4 << 20
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
    def __init__(self, layout: V2Layout, jobs: int = 16):
        self.layout = layout
        self.driver = layout.driver
        self.jobs = jobs
        self.pulls = PullRecorder(layout)

    # --- links -----------------------------------------------------------------------
    def _links_to(self, path: str, digest: Digest) -> bool:
        """Whether the link file at `path` is there and names `digest`. An empty link, or
        one naming another digest, counts as absent: distribution would answer 500 for
        what it points at; regtool serves, references and re-links it as if unlinked."""
        try:
            return self.layout.read_link(path) == digest
        except (FileNotFoundError, CorruptLink):
            return False

    def has_layer(self, name: str, digest: Digest) -> bool:
        return self._links_to(self.layout.layer_link(name, digest), digest)

    def has_revision(self, name: str, digest: Digest) -> bool:
        return self._links_to(self.layout.revision_link(name, digest), digest)

    # --- blobs -----------------------------------------------------------------------
    def blob_size(self, name: str, digest: Digest) -> int:
        """Size of a blob linked into `name`; `BlobUnknown` otherwise."""
        if not self.has_layer(name, digest):
            raise BlobUnknown(f"blob {digest} unknown to repository {name}")
        try:
            entry = self.driver.stat(self.layout.blob_data(digest))
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} unknown to registry") from None
        return entry.size or 0

    def open_blob(self, digest: Digest, offset: int, length: int) -> BinaryIO:
        try:
            return self.layout.open_blob(digest, offset, length)
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} unknown to registry") from None

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
        except BlobUnknown:
            return False
        v2_write.write_link(self.layout, self.layout.layer_link(name, digest), digest)
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
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {}
        media_type = detect_media_type(doc) if isinstance(doc, dict) else OCI_MANIFEST
        return StoredManifest(digest, media_type, data)

    def put_manifest(
        self, name: str, reference: str | Digest, data: bytes, content_type: str | None
    ) -> PutResult:
        digest = Digest.of(data, reference.algorithm if isinstance(reference, Digest) else "sha256")
        if isinstance(reference, Digest) and digest != reference:
            raise DigestMismatch(f"manifest digest {digest} does not match {reference}")
        manifest = self._check_manifest(data, content_type)
        self._check_references(name, manifest)
        blob = self.layout.blob_data(digest)
        if not self.driver.exists(blob):
            self.driver.put(blob, data)
        v2_write.write_link(self.layout, self.layout.revision_link(name, digest), digest)
        if isinstance(reference, str):
            self._tag(name, reference, digest)
        return PutResult(digest, manifest.subject.digest if manifest.subject else None)

    def _tag(self, name: str, tag: str, digest: Digest) -> None:
        v2_write.write_link(self.layout, self.layout.tag_index_link(name, tag, digest), digest)
        v2_write.write_link(self.layout, self.layout.tag_current_link(name, tag), digest)

    def _check_manifest(self, data: bytes, content_type: str | None) -> Manifest:
        """The manifest, if its `Content-Type` is a manifest type regtool stores and the
        body is of that type; `ManifestInvalid` otherwise. distribution 2.8 parses a body
        by its Content-Type (`mime.ParseMediaType`: parameters dropped, case ignored) and
        anything else (none, `text/plain`, `application/json`) as schema 1, which fails."""
        ctype = _media_type(content_type)
        if ctype not in ACCEPTED_TYPES:
            raise ManifestInvalid(
                f"Content-Type {ctype or '(none)'} is not a manifest type: "
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
        """Every blob (and, for an index, every child manifest) must be in the repository,
        as distribution checks; foreign layers (with `urls`) are exempt."""
        paths: dict[str, Digest] = {}
        for d in manifest.blobs:
            if not d.urls:
                paths[self.layout.layer_link(name, d.digest)] = d.digest
        for d in manifest.manifests:
            paths[self.layout.revision_link(name, d.digest)] = d.digest
        found = map_outcomes(lambda p: self._links_to(p, paths[p]), paths, self.jobs)
        missing = [str(paths[p]) for p, ok in found.items() if ok is not True]
        if missing:
            raise ManifestBlobUnknown(
                f"manifest references unknown blobs: {', '.join(missing[:5])}",
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
        """An OCI index of the manifests in `name` whose `subject` is `subject`."""
        revisions = v2_write.list_revisions(self.layout, name)

        def linked_manifest(digest: Digest) -> bytes:
            if not self.has_revision(name, digest):  # a listed directory, a bad link
                raise ManifestUnknown(f"manifest {digest} unknown to repository {name}")
            return self.layout.read_blob(digest)

        read = map_outcomes(linked_manifest, revisions, self.jobs)
        descriptors = []
        for digest, data in sorted(read.items()):
            if isinstance(data, Exception):
                continue
            try:
                manifest = parse_manifest(data)
            except ManifestInvalid:
                continue
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
                "size": len(data),
            }
            if kind:
                desc["artifactType"] = kind
            if manifest.annotations:
                desc["annotations"] = manifest.annotations
            descriptors.append(desc)
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}


def _media_type(content_type: str | None) -> str:
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
