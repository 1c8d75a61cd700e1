"""A manifest's facts as compact JSON: what `oci.Manifest` keeps, and nothing of the bytes.

The shape is regtool's own (`FORMAT` names it; a row of another format is read again from
storage, never guessed at): `{"t": media type, "c": config, "l": layers, "m": children,
"s": subject, "a": artifact type, "n": annotations}`, each descriptor a list
`[digest, size, media type, platform, urls, artifact type]`, a platform `[os, arch, variant]`.
"""

from __future__ import annotations

import json
from typing import Any

from regtool.oci import Descriptor, Digest, Manifest, Platform

#: Bumped whenever the shape changes: rows of another format are misses.
FORMAT = 1


def encode(manifest: Manifest) -> bytes:
    """The facts of `manifest` as UTF-8 JSON."""
    doc: dict[str, Any] = {"t": manifest.media_type}
    if manifest.config is not None:
        doc["c"] = _descriptor(manifest.config)
    if manifest.layers:
        doc["l"] = [_descriptor(d) for d in manifest.layers]
    if manifest.manifests:
        doc["m"] = [_descriptor(d) for d in manifest.manifests]
    if manifest.subject is not None:
        doc["s"] = _descriptor(manifest.subject)
    if manifest.artifact_type is not None:
        doc["a"] = manifest.artifact_type
    if manifest.annotations:
        doc["n"] = manifest.annotations
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> Manifest:
    """The manifest facts `encode` wrote; `ValueError` (or `KeyError`, `TypeError`) for
    anything else, which the caller treats as a miss."""
    doc = json.loads(data)
    config = doc.get("c")
    subject = doc.get("s")
    return Manifest(
        doc["t"],
        config=_parse_descriptor(config) if config is not None else None,
        layers=tuple(_parse_descriptor(d) for d in doc.get("l", ())),
        manifests=tuple(_parse_descriptor(d) for d in doc.get("m", ())),
        subject=_parse_descriptor(subject) if subject is not None else None,
        artifact_type=doc.get("a"),
        annotations=dict(doc.get("n", {})),
    )


def _descriptor(d: Descriptor) -> list[Any]:
    platform = [d.platform.os, d.platform.architecture, d.platform.variant] if d.platform else None
    row: list[Any] = [str(d.digest), d.size, d.media_type, platform, list(d.urls), d.artifact_type]
    while row and row[-1] in (None, [], ""):  # trailing defaults are implied
        row.pop()
    return row


def _parse_descriptor(row: list[Any]) -> Descriptor:
    row = row + [None] * (6 - len(row))
    digest, size, media_type, platform, urls, artifact_type = row
    return Descriptor(
        Digest.parse(digest),
        size,
        media_type or "",
        Platform(*platform) if platform else None,
        tuple(urls or ()),
        artifact_type,
    )
