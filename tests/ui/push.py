"""Pushes images through a registry's API (monolithic blob uploads, then the manifest),
as a client does: for UI tests that need images with particular configs, indexes and
referrers without building them with umoci.

    digest = push_image(client, "app", "1.0", labels={...}, history=[...])
    index = push_index(client, "app", "multi", {"linux/amd64": d1, "linux/arm64": d2})
    push_referrer(client, "app", subject=digest, artifact_type="application/spdx+json")
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(client: httpx.Client, name: str, data: bytes) -> dict[str, Any]:
    """The blob's descriptor, once the registry holds it."""
    digest = digest_of(data)
    started = client.post(f"/v2/{name}/blobs/uploads/")
    started.raise_for_status()
    location = started.headers["location"]
    client.put(location, params={"digest": digest}, content=data).raise_for_status()
    return {"digest": digest, "size": len(data)}


def put_manifest(client: httpx.Client, name: str, ref: str, doc: dict[str, Any]) -> str:
    data = json.dumps(doc).encode()
    r = client.put(
        f"/v2/{name}/manifests/{ref}", content=data, headers={"content-type": doc["mediaType"]}
    )
    r.raise_for_status()
    return str(r.headers["docker-content-digest"])


def push_image(
    client: httpx.Client,
    name: str,
    tag: str | None,
    *,
    labels: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
    layer: bytes = b"layer bytes",
    arch: str = "amd64",
) -> str:
    """An image of one layer; its manifest digest. `tag` None: pushed by digest."""
    image_config = {
        "architecture": arch,
        "os": "linux",
        "config": {**(config or {}), **({"Labels": labels} if labels else {})},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
        "history": history or [{"created_by": "regtool test"}],
    }
    cfg = push_blob(client, name, json.dumps(image_config).encode())
    lay = push_blob(client, name, layer)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **cfg},
        "layers": [{"mediaType": OCI_LAYER, **lay}],
    }
    if annotations:
        doc["annotations"] = annotations
    return put_manifest(client, name, tag or digest_of(json.dumps(doc).encode()), doc)


def push_index(client: httpx.Client, name: str, tag: str, children: dict[str, str]) -> str:
    """An OCI index of `children` (platform "os/arch" -> manifest digest, pushed)."""
    manifests = []
    for platform, digest in children.items():
        size = len(client.get(f"/v2/{name}/manifests/{digest}").content)
        os_name, arch = platform.split("/")
        manifests.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"os": os_name, "architecture": arch},
            }
        )
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return put_manifest(client, name, tag, doc)


def push_referrer(
    client: httpx.Client, name: str, subject: str, artifact_type: str, text: bytes = b"{}"
) -> str:
    """An OCI 1.1 artifact whose `subject` is `subject`, pushed by digest."""
    size = len(client.get(f"/v2/{name}/manifests/{subject}").content)
    empty = push_blob(client, name, b"{}")
    blob = push_blob(client, name, text)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
        "layers": [{"mediaType": artifact_type, **blob}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size},
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    }
    return put_manifest(client, name, digest_of(json.dumps(doc).encode()), doc)
