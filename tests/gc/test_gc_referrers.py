"""OCI 1.1 referrers stay with their subject under --delete-untagged."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.storage.local import LocalDriver
from tests.gc.scenario import build


def _put_blob(layout: V2Layout, repo: str, data: bytes) -> dict[str, Any]:
    digest = Digest.of(data)
    layout.driver.put(layout.blob_data(digest), data)
    layout.driver.put(layout.layer_link(repo, digest), str(digest).encode())
    return {"mediaType": "application/octet-stream", "digest": str(digest), "size": len(data)}


def _put_referrer(layout: V2Layout, repo: str, subject: str) -> tuple[str, str]:
    """A signature-like artifact pushed by digest: (its manifest digest, its layer)."""
    subject_bytes = layout.read_blob(Digest.parse(subject))
    layer = _put_blob(layout, repo, os.urandom(64))
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": _put_blob(layout, repo, b"{}"),
        "layers": [layer],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(subject_bytes)},
    }
    raw = json.dumps(doc).encode()
    digest = Digest.of(raw)
    layout.driver.put(layout.blob_data(digest), raw)
    layout.driver.put(layout.revision_link(repo, digest), str(digest).encode())
    return str(digest), layer["digest"]


def test_referrers_follow_their_subject(
    cli: Any, image_tools: None, distribution_fs: Any, tmp_path: Path
) -> None:
    s = build(distribution_fs.host, tmp_path / "oci")
    layout = V2Layout(LocalDriver(distribution_fs.root), FILESYSTEM_ROOT)
    tagged = s.tagged["app:v1"]
    untagged = next(
        d
        for d in s.untagged
        if str(d) in {str(r) for r in layout.scan_repositories()["app"].revisions}
    )
    kept, kept_layer = _put_referrer(layout, "app", tagged)
    signed, signed_layer = _put_referrer(layout, "app", kept)  # a referrer of a referrer
    lost, lost_layer = _put_referrer(layout, "app", untagged)

    doc = cli.json(
        "gc", "-l", str(distribution_fs.root), "--min-age", "0", "--dry-run", "--delete-untagged"
    )
    names = {o["name"] for o in doc["objects"]}
    assert not names & {kept, kept_layer, signed, signed_layer}
    assert {lost, lost_layer, untagged} <= names
    revisions = {o["name"] for o in doc["objects"] if o["kind"] == "revision-link"}
    assert revisions == {lost, untagged}
