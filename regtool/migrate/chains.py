"""A V1 tag's chain of images, base first, read and checked before anything is written.

A chain is what the V1 registry served a client pulling the tag: the tag file names the
top image, its `ancestry` lists it and every parent up to the base. Each image's `json`
must name itself and the next one as `parent`; an image seen twice is a loop; an image
without a `layer`, or with an upload still in progress, cannot be converted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from regtool.errors import NotFound
from regtool.layout.v1 import V1Image, V1Layout
from regtool.migrate.v1json import json_problem
from regtool.oci import JsonInvalid, load_json

_SHA256_CHECKSUM = re.compile(r"sha256:([0-9a-f]{64})", re.ASCII)


class ChainBroken(ValueError):
    """The tag's images cannot be read as a chain: the reason, for the report."""


@dataclass(frozen=True)
class ChainImage:
    """One V1 image of a chain: its `json` as stored, parsed, and the hex sha256 its
    `_checksum` gives (None when it has none, or an older `tarsum` one, which is not
    checked)."""

    image_id: str
    json_bytes: bytes
    doc: dict[str, Any]
    checksum: str | None
    layer_size: int | None  # from the listing, for progress


class ChainReader:
    """Reads chains, each image's files once per run (chains share their bases).
    `images`: one walk of `images/` (`V1Layout.scan_images`)."""

    def __init__(self, layout: V1Layout, images: dict[str, V1Image]):
        self.layout = layout
        self.images = images
        self._read: dict[str, ChainImage | ChainBroken] = {}

    def chain(self, repository: str, tag: str) -> list[ChainImage]:
        """The tag's images, base first: `ChainBroken`, `CorruptImage`, `NotFound`, or a
        storage error."""
        top = self.layout.tag_image_id(repository, tag)
        ancestry = self._ancestry(top)
        chain = [self.image(i) for i in reversed(ancestry)]
        for child, parent in zip(chain[1:], chain, strict=False):
            if child.doc.get("parent") != parent.image_id:
                raise ChainBroken(
                    f"image {child.image_id[:12]}: its json names parent "
                    f"{str(child.doc.get('parent'))[:12]}, its ancestry {parent.image_id[:12]}"
                )
        if "parent" in chain[0].doc and chain[0].doc["parent"]:
            raise ChainBroken(
                f"image {chain[0].image_id[:12]}: ancestry ends there, its json names "
                f"parent {str(chain[0].doc['parent'])[:12]}"
            )
        return chain

    def _ancestry(self, top: str) -> list[str]:
        if top not in self.images:
            raise ChainBroken(f"image {top[:12]} is missing (tagged, not in images/)")
        try:
            ancestry = self.layout.ancestry(top)
        except FileNotFoundError:
            raise ChainBroken(f"image {top[:12]}: ancestry missing") from None
        if not ancestry or ancestry[0] != top:
            raise ChainBroken(f"image {top[:12]}: ancestry does not start with the image")
        seen: set[str] = set()
        for image_id in ancestry:
            if image_id in seen:
                raise ChainBroken(f"ancestry loop: image {image_id[:12]} is its own ancestor")
            seen.add(image_id)
        return ancestry

    def image(self, image_id: str) -> ChainImage:
        """One image's json and checksum, read once: `ChainBroken` when it is missing or
        unusable."""
        if image_id not in self._read:
            try:
                self._read[image_id] = self._load(image_id)
            except ChainBroken as e:
                self._read[image_id] = e
        found = self._read[image_id]
        if isinstance(found, ChainBroken):
            raise found
        return found

    def _load(self, image_id: str) -> ChainImage:
        listed = self.images.get(image_id)
        short = image_id[:12]
        if listed is None:
            raise ChainBroken(f"image {short} is missing from images/")
        if "_inprogress" in listed.files:
            raise ChainBroken(f"image {short}: its upload never finished (_inprogress)")
        if not listed.has_layer:
            raise ChainBroken(f"image {short}: layer missing")
        try:
            json_bytes = self.layout.driver.get(self.layout.image_file(image_id, "json"))
        except FileNotFoundError:
            raise ChainBroken(f"image {short}: json missing") from None
        try:
            doc = load_json(json_bytes)
        except JsonInvalid:
            raise ChainBroken(f"image {short}: json is not JSON") from None
        if not isinstance(doc, dict) or doc.get("id") != image_id:
            raise ChainBroken(f"image {short}: json does not name the image as its id")
        problem = json_problem(doc)
        if problem is not None:
            raise ChainBroken(f"image {short}: json {problem}, which no client can read")
        return ChainImage(
            image_id, json_bytes, doc, self._checksum(image_id, listed), listed.layer_size
        )

    def _checksum(self, image_id: str, listed: V1Image) -> str | None:
        if "_checksum" not in listed.files:
            return None
        try:
            data = self.layout.driver.get(self.layout.image_file(image_id, "_checksum"))
        except (FileNotFoundError, NotFound):
            return None
        return parse_checksum(data)


def parse_checksum(data: bytes) -> str | None:
    """The hex sha256 of a `_checksum` file: a JSON list of checksums (the registry's
    `put_image_checksum`), or in older data a bare string, quoted or not. None for a
    `tarsum+sha256:` checksum (computed over tar headers: not checked here) or none."""
    try:
        value: Any = load_json(data)
    except JsonInvalid:
        value = data.decode("ascii", "replace").strip()
    candidates = value if isinstance(value, list) else [value]
    for candidate in candidates:
        if isinstance(candidate, str) and (m := _SHA256_CHECKSUM.fullmatch(candidate)):
            return m.group(1)
    return None
