"""The legacy V1 layout of the Python `docker-registry`, under its `storage_path` (`root`):

    <root>/
      images/<id>/json             image JSON as pushed; "id" equals <id>
      images/<id>/layer            the layer (usually a gzip'd tar)
      images/<id>/ancestry         JSON list [<id>, parent, grandparent, ...]
      images/<id>/_checksum        JSON list ["sha256:<hex>"] (older data: a bare string)
      images/<id>/_inprogress      present while an upload is unfinished
      repositories/<ns>/<repo>/tag_<tag>        the image id, plain text
      repositories/<ns>/<repo>/tag<tag>_json    {"last_update": ..., ...}
      repositories/<ns>/<repo>/_index_images    JSON list of {"id": ..., "checksum": ...}
      repositories/<ns>/<repo>/json, _private   repository metadata

Names without a namespace live under `library/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from regtool.errors import LayoutError, NotFound
from regtool.storage.base import Driver, Entry, join

IMAGE_ID_RE = re.compile(r"[a-f0-9]{16}|[a-f0-9]{64}", re.ASCII)  # matched whole: fullmatch
TAG_PREFIX = "tag_"


class CorruptImage(LayoutError):
    """An image's metadata cannot be read as the V1 format says."""


def canonical_name(name: str) -> str:
    """`exampleapp` -> `library/exampleapp`, as the V1 registry stored it."""
    return name if "/" in name else f"library/{name}"


@dataclass
class V1Repository:
    name: str
    tags: dict[str, Entry] = field(default_factory=dict)  # tag -> its tag_<tag> file


@dataclass
class V1Image:
    """What one listing of `images/<id>/` tells."""

    image_id: str
    files: dict[str, Entry] = field(default_factory=dict)  # file name -> entry

    @property
    def has_layer(self) -> bool:
        return "layer" in self.files

    @property
    def layer_size(self) -> int | None:
        """From the listing; None without a layer, or when the listing gives no size (a
        Swift large object lists as 0 bytes: stat it)."""
        layer = self.files.get("layer")
        return layer.size if layer else None


class V1Layout:
    kind = "v1"

    def __init__(self, driver: Driver, root: str = ""):
        self.driver = driver
        self.root = root

    def __repr__(self) -> str:
        return f"V1Layout({self.driver.describe()!r}, root={self.root!r})"

    # --- paths -----------------------------------------------------------------------
    def images_dir(self) -> str:
        return join(self.root, "images")

    def image_dir(self, image_id: str) -> str:
        return join(self.root, "images", check_image_id(image_id))

    def image_file(self, image_id: str, name: str) -> str:
        """`name` is one of json, layer, ancestry, _checksum, _inprogress."""
        return join(self.image_dir(image_id), name)

    def repositories_dir(self) -> str:
        return join(self.root, "repositories")

    def repository_dir(self, name: str) -> str:
        return join(self.root, "repositories", canonical_name(name))

    def tag_file(self, name: str, tag: str) -> str:
        return join(self.repository_dir(name), TAG_PREFIX + tag)

    # --- reading ---------------------------------------------------------------------
    def scan_repositories(self, name: str | None = None) -> dict[str, V1Repository]:
        top = self.repositories_dir() if name is None else self.repository_dir(name)
        base = self.repositories_dir() + "/"
        repos: dict[str, V1Repository] = {}
        for entry in self.driver.walk(top):
            rel = entry.path[len(base) :]
            repo_name, _, file_name = rel.rpartition("/")
            if not repo_name or not file_name.startswith(TAG_PREFIX):
                continue
            repos.setdefault(repo_name, V1Repository(repo_name)).tags[
                file_name[len(TAG_PREFIX) :]
            ] = entry
        return repos

    def scan_images(self, entries: Iterable[Entry] | None = None) -> dict[str, V1Image]:
        """Every image directory from one walk of `images/`."""
        base = self.images_dir() + "/"
        images: dict[str, V1Image] = {}
        for entry in entries if entries is not None else self.driver.walk(self.images_dir()):
            image_id, _, file_name = entry.path[len(base) :].partition("/")
            if IMAGE_ID_RE.fullmatch(image_id) and "/" not in file_name:
                images.setdefault(image_id, V1Image(image_id)).files[file_name] = entry
        return images

    def tag_image_id(self, name: str, tag: str) -> str:
        try:
            data = self.driver.get(self.tag_file(name, tag))
        except FileNotFoundError:
            raise NotFound(f"tag {canonical_name(name)}:{tag} not found") from None
        return parse_image_id(data, self.tag_file(name, tag))

    def read_json(self, image_id: str, name: str) -> object:
        path = self.image_file(image_id, name)
        data = self.driver.get(path)
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CorruptImage(f"{path} is not JSON") from None

    def ancestry(self, image_id: str) -> list[str]:
        value = self.read_json(image_id, "ancestry")
        if not isinstance(value, list) or not all(
            isinstance(i, str) and IMAGE_ID_RE.fullmatch(i) for i in value
        ):
            raise CorruptImage(f"ancestry of {image_id} is not a list of image ids")
        return value


def check_image_id(image_id: str) -> str:
    if not IMAGE_ID_RE.fullmatch(image_id):
        raise CorruptImage(f"invalid image id {image_id[:80]!r}")
    return image_id


def parse_image_id(data: bytes, where: str) -> str:
    text = data.decode("ascii", "replace").strip().strip('"')
    if not IMAGE_ID_RE.fullmatch(text):
        raise CorruptImage(f"{where} does not hold an image id: {data[:80]!r}")
    return text
