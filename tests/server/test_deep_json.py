"""JSON nested deeper than Python's parser goes (distribution, on Go's encoding/json,
stores documents nested 10000 levels deep): refused when pushed, served as stored when
read, never a 500."""

from __future__ import annotations

import hashlib
import json
import logging

import httpx
import pytest

from regtool.layout import v2_write
from regtool.oci import OCI_INDEX, OCI_MANIFEST, Digest
from tests.server.conftest import RunningRegistry
from tests.v2store import write_image

DEPTH = 3000


def deep_manifest(subject: Digest | None = None) -> bytes:
    """An OCI manifest with one field nested `DEPTH` arrays deep (its config and layer
    need not exist: only the nesting matters)."""
    head = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:" + "4" * 64,
            "size": 2,
        },
        "layers": [],
    }
    if subject is not None:
        head["subject"] = {"mediaType": OCI_MANIFEST, "digest": str(subject), "size": 1}
    text = json.dumps(head)[:-1]
    return f'{text}, "x": {"[" * DEPTH}{"]" * DEPTH}}}'.encode()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_push_of_deep_json_is_refused_as_invalid(local_registry: RunningRegistry) -> None:
    body = deep_manifest()
    with httpx.Client(base_url=local_registry.url, timeout=30) as client:
        r = client.put(
            "/v2/deep/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["code"] == "MANIFEST_INVALID"
        assert "nested too deeply" in r.json()["errors"][0]["message"]
        assert client.get("/v2/deep/manifests/v1").status_code == 404


def test_stored_deep_json_is_served_and_skipped_by_referrers(
    local_registry: RunningRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """What distribution stored is served byte for byte; the referrers of its subject are
    listed without it (it cannot be read), as any manifest that does not parse."""
    layout = local_registry.layout
    image = write_image(layout, "deep", "base")
    body = deep_manifest(subject=image.manifest)
    digest = Digest.parse(sha(body))
    layout.driver.put(layout.blob_data(digest), body)  # as distribution stores a push
    v2_write.write_link(layout, layout.revision_link("deep", digest), digest)
    v2_write.write_link(layout, layout.tag_index_link("deep", "v1", digest), digest)
    v2_write.write_link(layout, layout.tag_current_link("deep", "v1"), digest)
    caplog.set_level(logging.INFO)
    with httpx.Client(base_url=local_registry.url, timeout=30) as client:
        for ref in ("v1", str(digest)):
            r = client.get(f"/v2/deep/manifests/{ref}")
            assert r.status_code == 200, r.text
            assert r.content == body
            assert r.headers["Content-Type"] == OCI_MANIFEST
            assert r.headers["Docker-Content-Digest"] == str(digest)
            r = client.head(f"/v2/deep/manifests/{ref}")
            assert r.status_code == 200 and r.headers["Content-Length"] == str(len(body))
        r = client.get(f"/v2/deep/referrers/{image.manifest}")
        assert r.status_code == 200, r.text
        assert r.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
