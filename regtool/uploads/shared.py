"""Uploads whose data's segments a blob or another upload reads too: what a distribution
commit cut short between its two writes leaves (the blob's manifest written, the
upload's not yet deleted; `regtool.segment_names`). Deleting such an upload with its
segments would empty the other, so its data manifest goes alone (`purge.purge_upload`'s
`alone`)."""

from __future__ import annotations

from itertools import chain

from regtool.layout.blobs import walk_blobs
from regtool.layout.v2 import V2Layout
from regtool.segment_names import CHUNK, SegmentNames, chunks
from regtool.storage.base import Entry
from regtool.uploads.age import OldUpload


def readers_of(
    layout: V2Layout, uploads: list[OldUpload], names: SegmentNames, staying: list[Entry]
) -> dict[tuple[str, str], str]:
    """(repository, upload id) -> the path of a blob, or of the data of an upload that
    stays (`staying`: their entries), that reads segments of the upload's data, for each
    of `uploads` that has one. One HEAD per upload whose data may be a large object; only
    if one is, a walk of `blobs/` and a HEAD of each large blob and of each of `staying`
    that the cache of `names` does not hold. Storage faults are raised."""
    if not layout.driver.has_large_objects:
        return {}
    data = {
        f.path: (u.repository, u.upload_id)
        for u in uploads
        for f in u.files
        if f.path == layout.upload_data(u.repository, u.upload_id) and not f.size
    }
    sets = {
        data[path]: found
        for path, found in names.of(f for u in uploads for f in u.files if f.path in data).items()
        if isinstance(found, str)
    }
    if not sets:
        return {}
    blobs = walk_blobs(layout, layout.driver.walk(layout.blobs_dir()))
    large = chain((e for _, e in blobs if not e.size), staying)
    found: dict[tuple[str, str], str] = {}
    for chunk in chunks(large, CHUNK):
        for path, prefix in names.of(chunk).items():
            if not isinstance(prefix, str):
                continue
            for upload, own in sets.items():
                if _overlap(prefix, own):
                    found.setdefault(upload, path)
    return found


def _overlap(prefix: str, segment_set: str) -> bool:
    """Whether a manifest naming `prefix` reads any segment of `segment_set` (whose
    segments are `<set>/<name>`): the prefix begins the set's directory, or lies in it."""
    inside = segment_set.rstrip("/") + "/"
    return inside.startswith(prefix) or prefix.startswith(inside)
