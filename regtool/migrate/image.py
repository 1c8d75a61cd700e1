"""The V2 config and manifest of a converted V1 chain, as bytes that depend on the V1
input alone: keys sorted, no spaces (Go's encoding/json orders map keys the same way), so
a re-run or another machine gives the same digests.

The config is what Docker made of a V1 image when it moved its own store to V2
(`MakeConfigFromV1Config` and `HistoryFromConfig`, docker/image/v1/imagev1.go): the top
image's json without the V1-only keys, plus `rootfs` (one `diff_id` per non-empty layer,
base first) and one `history` entry per image of the chain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from regtool.layout.migrated import LayerRecord
from regtool.migrate.chains import ChainImage
from regtool.oci import DOCKER_MANIFEST, OCI_MANIFEST, Digest

#: The manifest format written (`--format`).
ManifestFormat = Literal["docker", "oci"]

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

#: Layer media types by (format, compression).
LAYER_TYPES: dict[tuple[str, str], str] = {
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ("docker", "none"): "application/vnd.docker.image.rootfs.diff.tar",
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("oci", "none"): "application/vnd.oci.image.layer.v1.tar",
}

#: Keys of a V1 image json that say nothing in V2 (`MakeConfigFromV1Config`).
_V1_ONLY = ("id", "parent", "Size", "parent_id", "layer_id", "throwaway")


@dataclass(frozen=True)
class V2Image:
    """A converted chain: the config and manifest bytes and their digests; `layers`, the
    layer blobs the manifest references, base first."""

    config: bytes
    config_digest: Digest
    manifest: bytes
    manifest_digest: Digest
    layers: tuple[LayerRecord, ...]


def canonical_json(doc: Any) -> bytes:
    """Deterministic JSON: keys sorted, no whitespace, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def history_entry(image: ChainImage, empty: bool) -> dict[str, Any]:
    """One image's `history` entry (`HistoryFromConfig`): fields left out when empty, as
    Go's `omitempty` does; `created_by` is the image's build command, joined by spaces."""
    doc = image.doc
    cmd = (
        (doc.get("container_config") or {}).get("Cmd")
        if isinstance(doc.get("container_config"), dict)
        else None
    )
    entry: dict[str, Any] = {}
    if doc.get("created"):
        entry["created"] = doc["created"]
    if isinstance(cmd, list) and cmd:
        entry["created_by"] = " ".join(str(c) for c in cmd)
    for key in ("author", "comment"):
        if doc.get(key):
            entry[key] = doc[key]
    if empty:
        entry["empty_layer"] = True
    return entry


def build_config(chain: Sequence[ChainImage], layers: Sequence[LayerRecord]) -> bytes:
    """The config of a chain whose layers (base first, one per image) were converted."""
    doc = {k: v for k, v in chain[-1].doc.items() if k not in _V1_ONLY}
    doc.setdefault("architecture", "amd64")  # the V1 registry's images predate the field
    doc.setdefault("os", "linux")
    doc["rootfs"] = {
        "type": "layers",
        "diff_ids": [str(layer.diff_id) for layer in layers if not layer.empty],
    }
    doc["history"] = [
        history_entry(image, layer.empty) for image, layer in zip(chain, layers, strict=True)
    ]
    return canonical_json(doc)


def build_image(
    chain: Sequence[ChainImage],
    layers: Sequence[LayerRecord],
    fmt: ManifestFormat,
    compression: str,
) -> V2Image:
    """Config and manifest of a converted chain."""
    config = build_config(chain, layers)
    config_digest = Digest.of(config)
    stored = tuple(layer for layer in layers if not layer.empty)
    layer_type = LAYER_TYPES[(fmt, compression)]
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if fmt == "docker" else OCI_MANIFEST,
        "config": {
            "mediaType": DOCKER_CONFIG if fmt == "docker" else OCI_CONFIG,
            "size": len(config),
            "digest": str(config_digest),
        },
        "layers": [
            {"mediaType": layer_type, "size": layer.size, "digest": str(layer.digest)}
            for layer in stored
        ],
    }
    manifest = canonical_json(manifest_doc)
    return V2Image(config, config_digest, manifest, Digest.of(manifest), stored)
