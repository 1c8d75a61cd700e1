"""`verify` on what skopeo does not push to distribution 2.8: signed schema 1 manifests,
sha512 blobs and foreign layers, written straight into the layout."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from regtool.inspect.verify import verify_registry
from regtool.oci import DOCKER_MANIFEST, Digest
from tests.handstore import HandStore


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signed_schema1(layers: list[Digest]) -> tuple[bytes, bytes]:
    """A libtrust-style signed schema 1 manifest and its payload (signature not real)."""
    payload = json.dumps(
        {
            "schemaVersion": 1,
            "name": "old/app",
            "tag": "1",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": str(d)} for d in layers],
            "history": [{"v1Compatibility": "{}"} for _ in layers],
        },
        indent=3,
    ).encode()
    body = payload[:-2]  # the JWS splices signatures in before the final "\n}"
    protected = _b64(
        json.dumps({"formatLength": len(body), "formatTail": _b64(payload[len(body) :])}).encode()
    )
    signature = b',\n   "signatures": [{"header": {}, "signature": "x", "protected": "%s"}]' % (
        protected.encode()
    )
    return body + signature + payload[len(body) :], payload


def test_signed_schema1_is_verified_over_its_payload(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    layers = [store.blob("old/app", os.urandom(500)) for _ in range(2)]
    signed, payload = signed_schema1(layers)
    store.manifest("old/app", "1", signed, Digest.of(payload))
    v = verify_registry(store.layout, "t", everything=True, blobs=True)
    assert v.ok, v.results
    assert [r.status for r in v.results] == ["ok"]

    (tmp_path / store.layout.blob_data(layers[1])).write_bytes(b"rot")
    v = verify_registry(store.layout, "t", everything=True)
    assert [(p.object, p.kind) for p in v.results[0].problems] == [(str(layers[1]), "digest")]


def test_sha512_blobs_and_foreign_layers(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    config = store.blob("app", b"{}", "sha512")
    layer = store.blob("app", os.urandom(3000), "sha512")
    foreign = Digest.of(b"windows base layer")
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "x", "digest": str(config), "size": 2},
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                "digest": str(foreign),
                "size": 18,
                "urls": ["https://example.com/base"],
            },
            {"mediaType": "l", "digest": str(layer), "size": 3000},
        ],
    }
    store.manifest("app", "1", json.dumps(doc).encode())
    v = verify_registry(store.layout, "t", everything=True, blobs=True)
    assert v.ok
    (result,) = v.results
    assert result.status == "skipped"
    assert [(p.object, p.kind) for p in result.problems] == [(str(foreign), "foreign")]
    assert v.bytes_hashed >= 3002

    data = tmp_path / store.layout.blob_data(layer)
    data.write_bytes(data.read_bytes()[:-1] + b"!")
    v = verify_registry(store.layout, "t", everything=True)
    assert v.results[0].status == "corrupt"
    assert (str(layer), "digest") in [(p.object, p.kind) for p in v.results[0].problems]


def test_only_a_non_distributable_layer_with_urls_may_be_absent(tmp_path: Path) -> None:
    """distribution accepts a manifest without a blob only for a non-distributable layer
    with urls; any other absent blob (a config with urls, a plain layer with urls, a
    non-distributable layer without urls) is missing, and a present one must be linked."""
    store = HandStore(tmp_path)
    urls = ["https://example.com/base"]
    nondistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    absent = {name: Digest.of(name.encode()) for name in ("config", "plain", "bare", "foreign")}
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": str(absent["config"]),
            "size": 6,
            "urls": urls,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": str(absent["plain"]),
                "size": 5,
                "urls": urls,
            },
            {"mediaType": nondistributable, "digest": str(absent["bare"]), "size": 4},
            {
                "mediaType": nondistributable,
                "digest": str(absent["foreign"]),
                "size": 7,
                "urls": urls,
            },
        ],
    }
    store.manifest("app", "1", json.dumps(doc).encode())
    v = verify_registry(store.layout, "t", ["app:1"])
    (result,) = v.results
    assert sorted((p.object, p.kind) for p in result.problems) == sorted(
        [
            (str(absent["config"]), "missing"),
            (str(absent["plain"]), "missing"),
            (str(absent["bare"]), "missing"),
            (str(absent["foreign"]), "foreign"),
        ]
    )
    # stored, but not linked into the repository: unlinked, urls or not
    store.driver.put(store.layout.blob_data(absent["config"]), b"config")
    v = verify_registry(store.layout, "t", ["app:1"])
    assert (str(absent["config"]), "unlinked") in [(p.object, p.kind) for p in v.problems]
