"""What `regtool migrate` remembers of the V1 layers it converted, beside distribution's
tree in the destination (distribution and regtool's other tools never read it):

    <v2 root>/migrated/v1/<compression>/<image id>      JSON: the layer's V2 blob

A record is written only once its blob is stored, so a run that stopped part way (or a
second run) takes every recorded layer as it is, without reading it again, and converts
the rest: the same V1 bytes always give the same blob, so both runs agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from regtool.layout.v1 import check_image_id
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest, JsonInvalid, load_json
from regtool.storage.base import join


@dataclass(frozen=True)
class LayerRecord:
    """A converted V1 layer: its blob (`digest`, `size`; none stored when `empty`) and
    the sha256 of its uncompressed tar (`diff_id`)."""

    digest: Digest
    diff_id: Digest
    size: int
    empty: bool


def records_dir(layout: V2Layout) -> str:
    return join(layout.root, "migrated", "v1")


def record_path(layout: V2Layout, compression: str, image_id: str) -> str:
    return join(records_dir(layout), compression, check_image_id(image_id))


def read_record(layout: V2Layout, compression: str, image_id: str) -> LayerRecord | None:
    """The record of `image_id` converted with `compression`; None when there is none or
    it cannot be read as one (it is then converted again, and rewritten)."""
    try:
        data = layout.driver.get(record_path(layout, compression, image_id))
    except FileNotFoundError:
        return None
    try:
        doc = load_json(data)
        return LayerRecord(
            Digest.parse(doc["digest"]),
            Digest.parse(doc["diff_id"]),
            int(doc["size"]),
            bool(doc["empty"]),
        )
    except (JsonInvalid, KeyError, TypeError, ValueError):
        return None


def write_record(layout: V2Layout, compression: str, image_id: str, record: LayerRecord) -> None:
    doc = {
        "digest": str(record.digest),
        "diff_id": str(record.diff_id),
        "size": record.size,
        "empty": record.empty,
    }
    data = json.dumps(doc, sort_keys=True).encode()
    layout.driver.put(record_path(layout, compression, image_id), data)
