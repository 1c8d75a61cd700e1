"""A V2 store written straight into distribution's layout, through regtool's own layout
functions (the bytes `regtool serve` and distribution write), for what pushing cannot make:
damaged links, hand-made manifests, sha512 blobs.

    store = HandStore(tmp_path)
    image = store.image("app", "1", layers=2)   # config, layers, manifest, links, tag
    store.layout.layer_link("app", image.layers[0])
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.layout.v2_write import write_link
from regtool.oci import OCI_MANIFEST, Digest
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver

LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class HandImage:
    digest: Digest
    config: Digest
    layers: list[Digest]

    @property
    def blobs(self) -> list[Digest]:
        return [self.config, *self.layers]


class HandStore:
    def __init__(self, root: Path | None = None, driver: Driver | None = None):
        self.driver = driver or LocalDriver(root or Path("/nonexistent"))
        self.layout = V2Layout(self.driver, FILESYSTEM_ROOT)

    def path(self, relative: str) -> Path:
        """The local file of a driver path (local stores only)."""
        assert isinstance(self.driver, LocalDriver)
        return self.driver.root / relative

    def blob(self, repo: str, data: bytes, algorithm: str = "sha256") -> Digest:
        """Store `data` and link it into `repo`."""
        digest = Digest.of(data, algorithm)
        self.driver.put(self.layout.blob_data(digest), data)
        write_link(self.layout, self.layout.layer_link(repo, digest), digest)
        return digest

    def manifest(self, repo: str, tag: str, data: bytes, digest: Digest | None = None) -> Digest:
        """Store a manifest, its revision link and the tag, in distribution's order."""
        digest = digest or Digest.of(data)
        layout = self.layout
        self.driver.put(layout.blob_data(digest), data)
        write_link(layout, layout.revision_link(repo, digest), digest)
        write_link(layout, layout.tag_index_link(repo, tag, digest), digest)
        write_link(layout, layout.tag_current_link(repo, tag), digest)
        return digest

    def image_of(self, repo: str, tag: str, layer: Digest, size: int) -> Digest:
        """An OCI image manifest in `repo` as `tag` whose one layer is the blob `layer` of
        `size` bytes, stored already (of any kind: a large object, an alias), and a
        config of its own; returns the manifest's digest."""
        config_bytes = b'{"architecture":"amd64","os":"linux"}'
        config = self.blob(repo, config_bytes)
        return self._image_manifest(repo, tag, config, len(config_bytes), [(layer, size)])

    def image(self, repo: str, tag: str, layers: int = 1, size: int = 1000) -> HandImage:
        """An OCI image of random layers, pushed into `repo` as `tag`."""
        unique = os.urandom(4).hex()
        config_bytes = json.dumps({"architecture": "amd64", "os": "linux", "id": unique})
        config = self.blob(repo, config_bytes.encode())
        blobs = [self.blob(repo, os.urandom(size)) for _ in range(layers)]
        layered = [(d, size) for d in blobs]
        manifest = self._image_manifest(repo, tag, config, len(config_bytes), layered)
        return HandImage(manifest, config, blobs)

    def _image_manifest(
        self,
        repo: str,
        tag: str,
        config: Digest,
        config_size: int,
        layers: list[tuple[Digest, int]],
    ) -> Digest:
        """An OCI image manifest of `config` and `layers` ((digest, size) each), stored
        in `repo` as `tag`."""
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(config),
                "size": config_size,
            },
            "layers": [{"mediaType": LAYER, "digest": str(d), "size": n} for d, n in layers],
        }
        return self.manifest(repo, tag, json.dumps(doc).encode())
