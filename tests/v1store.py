"""Builds a V1 (`docker-registry`, Python) store through any driver, byte for byte as that
registry wrote it: images/<id>/{json,layer,ancestry,_checksum} and repositories/..."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field

from regtool.storage.base import Driver, join


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


@dataclass
class V1Image:
    image_id: str
    json_bytes: bytes
    layer: bytes
    ancestry: list[str]

    @property
    def checksum(self) -> str:
        return "sha256:" + hashlib.sha256(self.json_bytes + b"\n" + self.layer).hexdigest()


@dataclass
class V1Store:
    driver: Driver
    root: str = ""
    images: dict[str, V1Image] = field(default_factory=dict)

    def add_image(self, parent: str | None = None, size: int = 2048) -> V1Image:
        image_id = os.urandom(32).hex()
        doc = {
            "id": image_id,
            "created": "2015-03-13T16:47:24.0Z",
            "Size": size,
            "container_config": {"Cmd": ["/bin/sh"]},
        }
        if parent:
            doc["parent"] = parent
        image = V1Image(
            image_id,
            json.dumps(doc).encode(),
            _layer({f"file-{image_id[:8]}": os.urandom(size)}),
            [image_id] + (self.images[parent].ancestry if parent else []),
        )
        base = join(self.root, "images", image_id)
        self.driver.put(f"{base}/json", image.json_bytes)
        self.driver.put(f"{base}/layer", image.layer)
        self.driver.put(f"{base}/ancestry", json.dumps(image.ancestry).encode())
        self.driver.put(f"{base}/_checksum", json.dumps([image.checksum]).encode())
        self.images[image_id] = image
        return image

    def add_chain(self, length: int = 3, size: int = 2048) -> V1Image:
        parent = None
        for _ in range(length):
            parent = self.add_image(parent.image_id if parent else None, size)
        assert parent is not None
        return parent

    def tag(self, name: str, tag: str, image: V1Image) -> None:
        repo = join(self.root, "repositories", name if "/" in name else f"library/{name}")
        self.driver.put(f"{repo}/tag_{tag}", image.image_id.encode())
        self.driver.put(
            f"{repo}/tag{tag}_json",
            json.dumps(
                {
                    "last_update": 1426265245,
                    "docker_version": "1.5.0",
                    "arch": "amd64",
                    "os": "linux",
                }
            ).encode(),
        )
        index = [{"id": i, "checksum": self.images[i].checksum} for i in image.ancestry]
        self.driver.put(f"{repo}/_index_images", json.dumps(index).encode())
        self.driver.put(f"{repo}/json", b"{}")

    def layer_bytes(self, image: V1Image) -> int:
        return sum(len(self.images[i].layer) for i in image.ancestry)
