r"""The legacy V1 layout of the Python `docker-registry`, under its `storage_path` (`root`):

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

Names without a namespace live under `library/`. Tag file names are the registry's
`tag_path` and `repository_tag_json_path` (docker-registry-core, `driver.py`), which
`quote_plus` the tag; for every tag its grammar allowed (`^[\w][\w.-]{0,127}$`, ASCII, in
`tags.py` since 2015) that changes nothing. A tag may start with `_`, so the metadata of
tag `_dev`, `tag_dev_json`, is also the tag file a tag `dev_json` would have: see
`tag_file_names` and `V1Layout.scan_repositories`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from regtool.errors import LayoutError, NotFound
from regtool.oci import JsonInvalid, load_json
from regtool.storage.base import Driver, Entry, join

IMAGE_ID_RE = re.compile(r"[a-f0-9]{16}|[a-f0-9]{64}", re.ASCII)  # matched whole: fullmatch
TAG_PREFIX = "tag_"
_JSON_PREFIX, _JSON_SUFFIX = "tag", "_json"


class CorruptImage(LayoutError):
    """An image's metadata cannot be read as the V1 format says."""


def canonical_name(name: str) -> str:
    """`exampleapp` -> `library/exampleapp`, as the V1 registry stored it."""
    return name if "/" in name else f"library/{name}"


def client_name(name: str) -> str:
    """The inverse of `canonical_name`: the name clients pulled a repository by, and the
    name a V2 registry serves it under (`library/exampleapp` -> `exampleapp`; a V2
    registry other than Docker Hub adds no `library/`)."""
    namespace, _, rest = name.partition("/")
    return rest if namespace == "library" and rest and "/" not in rest else name


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
        """`tag_<tag>`: the tag's image id."""
        return join(self.repository_dir(name), tag_file_name(tag))

    def tag_json_file(self, name: str, tag: str) -> str:
        """`tag<tag>_json`: when and by what the tag was pushed."""
        return join(self.repository_dir(name), tag_json_file_name(tag))

    def split_repository_path(self, path: str) -> tuple[str, str] | None:
        """(canonical repository name, file name) of a file directly in a repository's
        directory; None for a path elsewhere. The inverse of `tag_file` and
        `tag_json_file` with `tag_file_names`."""
        base = self.repositories_dir() + "/"
        if not path.startswith(base):
            return None
        repo_name, _, file_name = path[len(base) :].rpartition("/")
        return (repo_name, file_name) if repo_name else None

    def split_image_path(self, path: str) -> tuple[str, str] | None:
        """(image id, file name) of a file in an image's directory; None for any other
        path. The inverse of `image_file`."""
        base = self.images_dir() + "/"
        if not path.startswith(base):
            return None
        image_id, _, file_name = path[len(base) :].partition("/")
        if not IMAGE_ID_RE.fullmatch(image_id) or not file_name or "/" in file_name:
            return None
        return image_id, file_name

    # --- reading ---------------------------------------------------------------------
    def scan_repositories(self, name: str | None = None) -> dict[str, V1Repository]:
        """Every repository (or just `name`) with its tags, from one walk of
        `repositories/`. A file name that is both a tag file and another tag's metadata
        (`tag_dev_json`: tag `dev_json`, or the metadata of tag `_dev`) is settled by the
        files beside it, and when they cannot tell (both companions there, or neither) by
        reading it: an image id makes it a tag file. A tag whose file holds another tag's
        metadata stays listed, so that reading it reports the damage."""
        top = self.repositories_dir() if name is None else self.repository_dir(name)
        files: dict[str, dict[str, Entry]] = {}
        for entry in self.driver.walk(top):
            split = self.split_repository_path(entry.path)
            if split is not None:
                files.setdefault(split[0], {})[split[1]] = entry
        repos: dict[str, V1Repository] = {}
        for repo_name, entries in files.items():
            tags = {}
            for file_name, entry in entries.items():
                tag = self._tag_of(file_name, entry, entries)
                if tag is not None:
                    tags[tag] = entry
            if tags:
                repos[repo_name] = V1Repository(repo_name, tags)
        return repos

    def _tag_of(self, file_name: str, entry: Entry, beside: dict[str, Entry]) -> str | None:
        """The tag whose tag file `file_name` is, or None (metadata, another file)."""
        as_tag, as_json_of = tag_file_names(file_name)
        if as_tag is None or as_json_of is None:
            return as_tag
        tag_evidence = tag_json_file_name(as_tag) in beside
        json_evidence = tag_file_name(as_json_of) in beside
        if tag_evidence != json_evidence:
            return as_tag if tag_evidence else None
        try:
            data = self.driver.get(entry.path)
        except FileNotFoundError:
            return None  # deleted since the walk
        if tag_evidence or _holds_image_id(data) or not _holds_json_object(data):
            return as_tag
        return None  # the metadata of a tag deleted but for this file

    def scan_images(self, entries: Iterable[Entry] | None = None) -> dict[str, V1Image]:
        """Every image directory from one walk of `images/` (or from `entries` of it)."""
        images: dict[str, V1Image] = {}
        for entry in entries if entries is not None else self.driver.walk(self.images_dir()):
            split = self.split_image_path(entry.path)
            if split is not None:
                image_id, file_name = split
                images.setdefault(image_id, V1Image(image_id)).files[file_name] = entry
        return images

    def tag_image_id(self, name: str, tag: str) -> str:
        """The image id tag `tag` names: `NotFound`, `CorruptImage`."""
        path = self.tag_file(name, tag)
        try:
            data = self.driver.get(path)
        except FileNotFoundError:
            raise NotFound(f"tag {canonical_name(name)}:{tag} not found") from None
        _, shared_with = tag_file_names(tag_file_name(tag))
        if shared_with is not None and _holds_json_object(data):
            raise CorruptImage(
                f"{path} holds the metadata of tag {shared_with}, not an image id: the V1 "
                f"registry writes tag {tag} and that metadata to one file name"
            )
        return parse_image_id(data, path)

    def read_json(self, image_id: str, name: str) -> object:
        path = self.image_file(image_id, name)
        data = self.driver.get(path)
        try:
            return load_json(data)
        except JsonInvalid:
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


def tag_file_name(tag: str) -> str:
    return TAG_PREFIX + tag


def tag_json_file_name(tag: str) -> str:
    return _JSON_PREFIX + tag + _JSON_SUFFIX


def tag_file_names(file_name: str) -> tuple[str | None, str | None]:
    """The inverse of `tag_file_name` and `tag_json_file_name` for the names that matter:
    (the tag whose tag file `file_name` may be, the tag whose metadata it may be). Only a
    `tag_<x>_json` name is both (`tag_dev_json`: tag `dev_json`, or the metadata of tag
    `_dev`); `tag<x>_json` without the `_` is metadata, read as (None, None) like any other
    file that is no tag file."""
    if not file_name.startswith(TAG_PREFIX) or len(file_name) == len(TAG_PREFIX):
        return None, None
    as_tag = file_name[len(TAG_PREFIX) :]
    if file_name.endswith(_JSON_SUFFIX) and len(file_name) >= len(TAG_PREFIX + _JSON_SUFFIX):
        return as_tag, file_name[len(_JSON_PREFIX) : -len(_JSON_SUFFIX)]
    return as_tag, None


def parse_image_id(data: bytes, where: str) -> str:
    """The image id a tag file holds: exactly the id, as `put_tag` (docker-registry
    `tags.py`) writes it; `CorruptImage` (naming `where`) otherwise. Around an id, a
    newline, CR, space or quotes are damage, not a format: `get_tag` serves the file as
    it is, so a client asks for `images/<id>\n/...` and fails."""
    text = data.decode("ascii", "replace")
    if IMAGE_ID_RE.fullmatch(text):
        return text
    if _holds_image_id(data):
        raise CorruptImage(
            f"{where} holds an image id with other bytes around it ({data[:80]!r}): the V1 "
            "registry serves the file as it is, and clients fail on it"
        )
    raise CorruptImage(f"{where} does not hold an image id: {data[:80]!r}")


def _holds_image_id(data: bytes) -> bool:
    """Whether `data` is an image id, give or take whitespace and quotes around it: what
    tells a tag file from another tag's metadata (`V1Layout._tag_of`)."""
    return bool(IMAGE_ID_RE.fullmatch(data.decode("ascii", "replace").strip().strip('"')))


def _holds_json_object(data: bytes) -> bool:
    try:
        return isinstance(load_json(data), dict)
    except JsonInvalid:
        return False
