"""Writes a small V2 (distribution) image through any driver with the layout's own paths
and link writer, as `regtool serve` stores a push: for tests that need a valid store
without starting distribution.

    image = write_image(layout, "app", "1.0")   # config, one layer, an OCI manifest
    image.blobs                                 # every blob digest, manifest included
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from regtool.layout import v2_write
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest


@dataclass
class WrittenImage:
    manifest: Digest
    config: Digest
    layers: list[Digest] = field(default_factory=list)

    @property
    def blobs(self) -> set[Digest]:
        return {self.manifest, self.config, *self.layers}


def _blob(layout: V2Layout, name: str, data: bytes) -> Digest:
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    layout.driver.put(layout.blob_data(digest), data)
    v2_write.write_link(layout, layout.layer_link(name, digest), digest)
    return digest


def write_image(
    layout: V2Layout, name: str, tag: str, layer: bytes = b"layer bytes"
) -> WrittenImage:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    config_digest = _blob(layout, name, config)
    layer_digest = _blob(layout, name, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(config_digest),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": str(layer_digest),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    digest = Digest("sha256", hashlib.sha256(manifest).hexdigest())
    layout.driver.put(layout.blob_data(digest), manifest)
    v2_write.write_link(layout, layout.revision_link(name, digest), digest)
    v2_write.write_link(layout, layout.tag_index_link(name, tag, digest), digest)
    v2_write.write_link(layout, layout.tag_current_link(name, tag), digest)
    return WrittenImage(digest, config_digest, [layer_digest])
