"""`list_registry` sizes schema 1 images (whose manifests carry no sizes) by their blobs,
also through a manifest reader kept between listings that holds other stores' manifests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from regtool.inspect.listing import list_registry
from regtool.layout import v2_write
from regtool.layout.detect import default_layout
from regtool.layout.manifests import ManifestReader
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.storage.local import LocalDriver


def _schema1(layout: V2Layout, name: str, tag: str, layers: list[bytes]) -> Digest:
    sums = []
    for data in layers:
        digest = Digest("sha256", hashlib.sha256(data).hexdigest())
        layout.driver.put(layout.blob_data(digest), data)
        v2_write.write_link(layout, layout.layer_link(name, digest), digest)
        sums.append({"blobSum": str(digest)})
    doc = {"schemaVersion": 1, "name": name, "tag": tag, "fsLayers": sums, "history": []}
    data = json.dumps(doc).encode()
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    layout.driver.put(layout.blob_data(digest), data)
    v2_write.write_link(layout, layout.revision_link(name, digest), digest)
    v2_write.write_tag(layout, name, tag, digest)
    return digest


def test_schema1_images_are_sized_by_their_blobs(tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    _schema1(layout, "old", "1", [b"a" * 100, b"b" * 20])
    _schema1(layout, "other", "1", [b"c" * 7])
    reader = ManifestReader(layout)
    everything = list_registry(layout, "here", None, reader=reader)
    assert [t.size for r in everything.repositories for t in r.tags] == [120, 7]
    # a kept reader holds both; a listing of one repository sizes only its own
    scanned = layout.scan_repositories("old")
    one = list_registry(layout, "here", None, scanned=scanned, reader=reader)
    assert [(r.name, [t.size for t in r.tags]) for r in one.repositories] == [("old", [120])]
    assert one.total_size == 120
