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
from regtool.layout.v2 import V2Layout
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

    # --- blobs -----------------------------------------------------------------------
    def blob_size(self, name: str, digest: Digest) -> int:
        """Size of a blob linked into `name`; `BlobUnknown` otherwise."""
        if not self.driver.exists(self.layout.layer_link(name, digest)):
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
        if isinstance(reference, Digest):
            return reference
        try:
            return self.layout.read_link(self.layout.tag_current_link(name, reference))
        except FileNotFoundError:
            raise ManifestUnknown(
                f"manifest tagged {reference} is not known", {"Tag": reference}
            ) from None

    def get_manifest(self, name: str, reference: str | Digest) -> StoredManifest:
        digest = self.resolve(name, reference)
        if not self.driver.exists(self.layout.revision_link(name, digest)):
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
        manifest = parse_manifest(data)
        if manifest.media_type in SCHEMA1_TYPES:
            raise ManifestInvalid("schema 1 manifests are not accepted")
        if manifest.media_type not in ACCEPTED_TYPES:
            raise ManifestInvalid(f"unsupported manifest media type {manifest.media_type}")
        declared = json.loads(data).get("mediaType")
        ctype = (content_type or "").split(";")[0].strip()
        if declared and ctype in ACCEPTED_TYPES and ctype != declared:
            raise ManifestInvalid(f"mediaType {declared} does not match Content-Type {ctype}")
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
        found = map_outcomes(self.driver.exists, paths, self.jobs)
        missing = [str(paths[p]) for p, ok in found.items() if ok is not True]
        if missing:
            raise ManifestBlobUnknown(
                f"manifest references unknown blobs: {', '.join(missing[:5])}",
                [{"digest": m} for m in missing],
            )

    def delete_manifest(self, name: str, digest: Digest) -> None:
        """Remove the revision link and every tag that points at the manifest."""
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
        return v2_write.list_repositories(self.layout)

    def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> dict[str, Any]:
        """An OCI index of the manifests in `name` whose `subject` is `subject`."""
        revisions = v2_write.list_revisions(self.layout, name)
        read = map_outcomes(self.layout.read_blob, revisions, self.jobs)
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
